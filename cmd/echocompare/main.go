// Command echocompare is `make bench`: it runs echobench against every model, each as its own
// pinned server process on loopback, and prints one table ranked by throughput, with each
// model's ratio to the stdlib baseline. Every cell's full JSON goes to -o.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"echobench/bench"
	"echobench/server"
)

func main() {
	out := flag.String("o", "", "directory for the results (default results/<UTC time>)")
	echobench := flag.String("echobench", "bin/echobench", "echobench binary")
	models := flag.String("models", "", "comma-separated rows to run (default all: "+rowNames()+")")
	duration := flag.Duration("d", 3*time.Second, "measured duration per cell")
	warmup := flag.Duration("warmup", time.Second, "warmup per cell")
	repeat := flag.Int("repeat", 1, "runs per cell, alternating the model order")
	timeout := flag.Duration("timeout", 40*time.Second, "a cell taking longer is killed and shown as n/a")
	// Every server.Config flag, given to every row's server (a row's own setting wins).
	var shared server.Config
	shared.RegisterFlags(flag.CommandLine)
	flag.Parse()

	rows := bench.DefaultRows()
	if *models != "" {
		want := map[string]bool{}
		for _, m := range strings.Split(*models, ",") {
			want[strings.TrimSpace(m)] = true
		}
		var picked []bench.Row
		for _, r := range rows {
			if want[r.Name] {
				picked = append(picked, r)
				delete(want, r.Name)
			}
		}
		if len(want) > 0 {
			fmt.Fprintf(os.Stderr, "echocompare: unknown rows %v; known: %s\n", keys(want), rowNames())
			os.Exit(2)
		}
		rows = picked
	}
	if *out == "" {
		*out = filepath.Join("results", time.Now().UTC().Format("20060102T150405Z"))
	}
	if _, err := os.Stat(*echobench); err != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v; run `make build` first (or `make bench`, which does)\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cells := bench.DefaultCells(*warmup, *duration)
	start := time.Now()
	results, err := bench.Run(ctx, bench.Config{
		Echobench: *echobench,
		OutDir:    *out,
		Rows:      rows,
		Server:    shared,
		Cells:     cells,
		Repeat:    *repeat,
		Timeout:   *timeout,
		Log: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		},
	})
	var table strings.Builder
	fmt.Fprintf(&table, "echobench comparison, %s; %d run(s) per cell, model order alternated between runs\n",
		time.Now().UTC().Format(time.RFC3339), *repeat)
	for _, c := range cells {
		fmt.Fprintf(&table, "  %s\n", strings.ReplaceAll(bench.Caption(results, c), "\n", "\n    "))
	}
	fmt.Fprintln(&table)
	bench.Table(&table, results, cells)
	fmt.Print(table.String())
	if werr := os.WriteFile(filepath.Join(*out, "table.txt"), []byte(table.String()), 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", werr)
	}
	if _, perr := bench.Plots(*out, results, cells); perr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", perr)
	}
	fmt.Printf("\nfull results: %s (%.0fs)\n", *out, time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", err)
		os.Exit(1)
	}
}

func rowNames() string {
	var n []string
	for _, r := range bench.DefaultRows() {
		n = append(n, r.Name)
	}
	return strings.Join(n, ",")
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}
