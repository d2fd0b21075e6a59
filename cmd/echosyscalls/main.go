// Command echosyscalls is `make syscalls`: one fixed workload against every model, each server
// counted on its own by perf stat (or strace -f -c, with -tracer strace) and run once more
// untraced, written to results/syscalls.md and results/syscalls.csv (internal/syscount says how
// the figures are made).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"echobench/bench"
	"echobench/internal/cmdline"
	"echobench/internal/syscount"
	"echobench/measure"
	_ "echobench/models/all"
	"echobench/server"
)

func main() {
	c := syscount.Config{Log: os.Stderr}
	bin := flag.String("bin", "bin", "directory holding echoserver and echobench (make build)")
	out := flag.String("o", "results/syscalls", "output path without extension: writes .md and .csv")
	models := flag.String("models", "", "comma-separated rows to run (default all)")
	tracer := flag.String("tracer", syscount.Tracers[0], "what counts the syscalls: "+strings.Join(syscount.Tracers, " or ")+" (strace stops the server at every call, which under-counts the polling models' waits)")
	flag.IntVar(&c.Conns, "c", 100, "connections")
	flag.IntVar(&c.Size, "size", 64, "message size in bytes")
	flag.IntVar(&c.Messages, "messages", 200_000, "echoes in each run's measured window")
	flag.DurationVar(&c.Warmup, "warmup", time.Second, "load before the measured window")
	flag.DurationVar(&c.Limit, "limit", 2*time.Minute, "the longest one measured window may run")
	flag.StringVar(&c.ServerCPUs, "server-cpus", "0", "CPUs for the server")
	flag.StringVar(&c.ClientCPUs, "client-cpus", "1", "CPUs for echobench")
	cmdline.ParseCommandLine()
	c.EchoServer = filepath.Join(*bin, "echoserver")
	c.EchoBench = filepath.Join(*bin, "echobench")

	if err := c.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "echosyscalls: %v\n", err)
		os.Exit(2)
	}
	var err error
	if c.Tracer, err = syscount.FindTracer(*tracer); err != nil {
		fmt.Fprintf(os.Stderr, "echosyscalls: %v\n", err)
		os.Exit(1)
	}
	targets, err := pick(targets(), *models)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echosyscalls: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var rows []syscount.Row
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "echosyscalls: %s ...\n", t.Name)
		row := syscount.Measure(ctx, c, t)
		if row.Skipped != "" {
			fmt.Fprintf(os.Stderr, "echosyscalls: %s not measured: %s\n", t.Name, row.Skipped)
		}
		rows = append(rows, row)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "echosyscalls: interrupted; nothing written")
		os.Exit(1)
	}
	if !slices.ContainsFunc(rows, func(r syscount.Row) bool { return r.Skipped == "" }) {
		fmt.Fprintf(os.Stderr, "echosyscalls: no model was measured (each says why above); %s.md and %s.csv are left as they were\n", *out, *out)
		os.Exit(1)
	}
	env := measure.CollectEnv()
	cond := syscount.Conditions{
		Command:   strings.Join(os.Args, " "),
		Workload:  fmt.Sprintf("%d connections × %d B closed-loop ping-pong, %d echoes in the measured window after %v of warmup (echobench %s)", c.Conns, c.Size, c.Messages, c.Warmup, strings.Join(c.Args(), " ")),
		Pinning:   fmt.Sprintf("server on CPU %s, echobench on CPU %s", c.ServerCPUs, c.ClientCPUs),
		Kernel:    env.Kernel,
		GoVersion: env.GoVersion,
		Commit:    env.Commit,
		CPU:       fmt.Sprintf("%d × %s", env.Cores, env.CPUModel),

		Tracer:        c.Tracer.Name(),
		TracerVersion: c.Tracer.Version(),
		Named:         c.Tracer.Named(),
	}
	if err := write(*out, cond, rows); err != nil {
		fmt.Fprintf(os.Stderr, "echosyscalls: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "echosyscalls: wrote %s.md and %s.csv\n", *out, *out)
}

// targets are the harness's rows (its pool rows included), then any registered model the harness
// does not run.
func targets() []syscount.Target {
	var ts []syscount.Target
	seen := map[string]bool{}
	for _, r := range bench.DefaultRows() {
		ts = append(ts, syscount.Target{Name: r.Name, Model: r.Model, Server: r.Server})
		seen[r.Model] = true
	}
	for _, name := range server.Names() {
		if !seen[name] {
			ts = append(ts, syscount.Target{Name: name, Model: name})
		}
	}
	return ts
}

// pick keeps the targets named in list (comma-separated), or all of them when list is empty.
func pick(ts []syscount.Target, list string) ([]syscount.Target, error) {
	if list == "" {
		return ts, nil
	}
	var picked []syscount.Target
	for name := range strings.SplitSeq(list, ",") {
		i := slices.IndexFunc(ts, func(t syscount.Target) bool { return t.Name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("-models: no row %q", name)
		}
		picked = append(picked, ts[i])
	}
	return picked, nil
}

func write(out string, cond syscount.Conditions, rows []syscount.Row) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	md, err := os.Create(out + ".md")
	if err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	defer md.Close()
	if err := syscount.WriteMarkdown(md, cond, rows); err != nil {
		return err
	}
	csv, err := os.Create(out + ".csv")
	if err != nil {
		return fmt.Errorf("create csv: %w", err)
	}
	defer csv.Close()
	if err := syscount.WriteCSV(csv, rows); err != nil {
		return err
	}
	if err := md.Close(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if err := csv.Close(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
