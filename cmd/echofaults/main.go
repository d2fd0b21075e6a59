// Command echofaults is `make faults`: every model, each as its own echoserver process on
// loopback, under every fault scenario of package faults; a table of what held and what broke
// on stdout, and results/faults.md and results/faults.csv.
//
//	echofaults -bin bin [-scale full|quick] [-models epoll,select] [-scenarios half-close,...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"echobench/faults"
	"echobench/internal/affinity"
	"echobench/internal/cmdline"
	"echobench/internal/reexec"
	"echobench/measure"
	_ "echobench/models/all"
)

func main() {
	reexec.Run()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("echofaults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bin", "directory of the built echoserver, echobench, echocompare and echosyscalls")
	scale := fs.String("scale", "full", "load sizes: full (make faults) or quick (seconds, as in make test)")
	models := fs.String("models", "", "comma-separated rows to run (model names, or process/prefork); empty = all")
	names := fs.String("scenarios", "", "comma-separated scenarios to run; empty = all")
	outDir := fs.String("o", "results", "directory for faults.md and faults.csv (soak.md and soak.csv with -soak)")
	soak := fs.Bool("soak", false, "run the soak instead of the scenarios: every row at -soak-conns (or its most) for -soak-d")
	soakConns := fs.Int("soak-conns", 10000, "connections per row in the soak, where the row can hold them")
	soakDur := fs.Duration("soak-d", time.Minute, "measured window of each row's soak")
	if err := cmdline.Parse(fs, args, stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "echofaults: "+format+"\n", a...)
		return code
	}
	if *soak && (*soakConns <= 0 || *soakDur < 10*time.Second) {
		return fail(2, "-soak-conns %d -soak-d %v: want at least one connection and 10 s", *soakConns, *soakDur)
	}
	sc := faults.Full
	switch *scale {
	case "full":
	case "quick":
		sc = faults.Quick
	default:
		return fail(2, "-scale %q: want full or quick", *scale)
	}
	scenarios, err := faults.Select(faults.Scenarios(), split(*names))
	if err != nil {
		return fail(2, "%v", err)
	}
	rows, err := selectRows(faults.Rows(), split(*models))
	if err != nil {
		return fail(2, "%v", err)
	}
	if st, err := os.Stat(filepath.Join(*binDir, "echoserver")); err != nil || st.IsDir() {
		return fail(2, "no echoserver in %s: run `make build` first, or point -bin at the binaries", *binDir)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fail(1, "results directory: %v", err)
	}
	// Servers on the first CPU, this process (the clients) on the others, as every benchmark
	// here pins them.
	env := faults.EnvOptions{BinDir: *binDir}
	pinning := "unpinned (one CPU)"
	if cpus, err := affinity.Online(); err == nil && len(cpus) >= 2 {
		env.ServerCPUs = cpus[:1]
		if _, err := affinity.PinProcess(os.Getpid(), cpus[1:]); err == nil {
			pinning = fmt.Sprintf("servers on CPU %s, clients on CPU %s", affinity.Format(cpus[:1]), affinity.Format(cpus[1:]))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := measure.CollectEnv()
	header := fmt.Sprintf("%s, scale %s; %s, kernel %s, %s, %d CPUs, commit %s; %s. Re-run: `make faults` (or `bin/echofaults -models M -scenarios S`).",
		e.Start, sc.Name, e.CPUModel, e.Kernel, e.GoVersion, e.Cores, e.Commit, pinning)
	name := "faults"
	var cells []faults.Cell
	if *soak {
		name = "soak"
		scenarios = []faults.Scenario{faults.SoakScenario(*soakConns, *soakDur)}
		header = strings.Replace(header, "scale "+sc.Name, fmt.Sprintf("soak: %d connections x %v per row", *soakConns, *soakDur), 1)
		cells = faults.Soak(ctx, rows, faults.SoakOptions{Conns: *soakConns, Duration: *soakDur}, env, stderr)
	} else {
		cells = faults.Run(ctx, faults.Options{Rows: rows, Scenarios: scenarios, Scale: sc, Env: env, Progress: stderr})
	}

	md, err := os.Create(filepath.Join(*outDir, name+".md"))
	if err != nil {
		return fail(1, "%v", err)
	}
	defer md.Close()
	if err := faults.WriteMarkdown(md, cells, scenarios, header); err != nil {
		return fail(1, "write %s: %v", md.Name(), err)
	}
	cf, err := os.Create(filepath.Join(*outDir, name+".csv"))
	if err != nil {
		return fail(1, "%v", err)
	}
	defer cf.Close()
	if err := faults.WriteCSV(cf, cells); err != nil {
		return fail(1, "write %s: %v", cf.Name(), err)
	}
	fmt.Fprintln(stdout, header)
	faults.WriteMatrix(stdout, cells, scenarios)
	faults.WriteSummary(stdout, cells)
	fmt.Fprintf(stdout, "faults: the full table is in %s and %s\n", md.Name(), cf.Name())
	if ctx.Err() != nil {
		return fail(1, "interrupted; the table holds the cells that finished")
	}
	for _, c := range cells {
		if c.Verdict == faults.Breaks {
			return 1
		}
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func selectRows(all []faults.Row, names []string) ([]faults.Row, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []faults.Row
	for _, n := range names {
		found := false
		for _, r := range all {
			if r.Name == n {
				out, found = append(out, r), true
			}
		}
		if !found {
			var known []string
			for _, r := range all {
				known = append(known, r.Name)
			}
			return nil, fmt.Errorf("unknown row %q; known: %s", n, strings.Join(known, " "))
		}
	}
	return out, nil
}
