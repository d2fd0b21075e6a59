// Command echocompare is `make bench`: it runs echobench against every row (each model as its
// own pinned server process on loopback, the C reference server, and any -server of your own)
// under every cell of the BENCH level's matrix, and prints the ranked tables, with each row's
// ratio to the stdlib baseline. Every run's JSON and latency log, env.json and the plots go to -o.
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
	"echobench/internal/affinity"
	"echobench/internal/cmdline"
	_ "echobench/models/all" // the registry bench reads for what each row supports (the UDP cell)
	"echobench/server"
)

func main() {
	level := flag.String("bench", bench.LevelDefault, "matrix: quick (under 3 min), default (under 12 min) or full (under 45 min)")
	out := flag.String("o", "", "directory for the results (default results/<UTC time>)")
	echobench := flag.String("echobench", "bin/echobench", "echobench binary; the C reference server is epoll_echo beside it")
	models := flag.String("models", "", "comma-separated rows to run (default all: "+rowNames("bin")+"); -server rows always run")
	var servers []bench.Row
	flag.Func("server", "`NAME=COMMAND` with {port} in it: an extra row, started by the harness on a free loopback port, pinned like the models (repeatable)", func(spec string) error {
		row, err := bench.ParseServer(spec)
		servers = append(servers, row)
		return err
	})
	repeat := flag.Int("repeat", 1, "rounds of every cell, alternating the row order (adaptive cells get at least 2)")
	maxRepeat := flag.Int("max-repeat", 0, "most rounds of an adaptive cell (default: the level's)")
	tol := flag.Float64("tol", bench.DefaultTolerance, "adaptive cells repeat until every ratio to "+bench.Baseline+"'s 95% interval is within ±tol")
	budget := flag.Duration("budget", 0, "no adaptive round starts that would end past this much wall time (default: the level's)")
	duration := flag.Duration("d", 0, "measured window of every cell but the knee searches (default: the level's)")
	warmup := flag.Duration("warmup", 0, "warmup of every cell but the knee searches (default: the level's)")
	timeout := flag.Duration("timeout", 60*time.Second, "a run taking longer is killed and shown as n/a (knee searches have their level's own)")
	hlog := flag.Bool("hlog", true, "ask echobench for each run's latency interval log (.hlog), if it has -hlog")
	serverCPUs := flag.String("server-cpus", "0", "CPUs external servers are pinned to (models: echobench's -server-cpus default, the same)")
	// Every server.Config flag, given to every model row's server (a row's own setting wins).
	var shared server.Config
	shared.RegisterFlags(flag.CommandLine)
	cmdline.ParseCommandLine()

	fail := func(code int, format string, args ...any) {
		fmt.Fprintf(os.Stderr, "echocompare: "+format+"\n", args...)
		os.Exit(code)
	}
	lim, err := bench.CurrentLimits()
	if err != nil {
		fail(1, "%v", err)
	}
	cells, err := bench.Matrix(*level, lim)
	if err != nil {
		fail(2, "%v", err)
	}
	cells = overrideWindow(cells, *warmup, *duration)
	binDir := filepath.Dir(*echobench)
	rows, err := pickRows(binDir, *models)
	if err != nil {
		fail(2, "%v", err)
	}
	for _, s := range servers {
		for _, r := range rows {
			if r.Name == s.Name {
				fail(2, "-server %s: a row of that name already runs; choose another name", s.Name)
			}
		}
		rows = append(rows, s)
	}
	features, err := bench.ProbeEchobench(*echobench)
	if err != nil {
		fail(1, "%v", err)
	}
	features.HLog = features.HLog && *hlog
	cpus, err := affinity.ParseList(*serverCPUs)
	if err != nil {
		fail(2, "-server-cpus: %v", err)
	}
	if online, err := affinity.Online(); err != nil || len(online) < 2 {
		cpus = nil // one CPU: server and echobench share it whatever we do, as echobench says too
	}
	if *out == "" {
		*out = bench.ResultsDir(time.Now())
	}
	// Before anything runs: a run of minutes whose results cannot be written is worth nothing.
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(1, "results directory: %v; give -o a directory you can write", err)
	}
	if *maxRepeat == 0 {
		*maxRepeat = bench.MaxRepeat(*level)
	}
	if *budget == 0 {
		*budget = bench.Budget(*level)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, err := bench.Run(ctx, bench.Config{
		Echobench: *echobench, OutDir: *out, Level: *level,
		Rows: rows, Cells: cells, Server: shared, ServerCPUs: cpus,
		Repeat: *repeat, MaxRepeat: *maxRepeat, Tolerance: *tol, Budget: *budget, Timeout: *timeout,
		Limits: lim, Features: features,
		Log: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "[%s] %s\n", clock(time.Since(start)), fmt.Sprintf(format, args...))
		},
	})
	var table strings.Builder
	fmt.Fprintf(&table, "echobench comparison, BENCH=%s, %s; model order alternated between rounds\n",
		*level, time.Now().UTC().Format(time.RFC3339))
	for _, c := range cells {
		fmt.Fprintf(&table, "  %s\n", strings.ReplaceAll(bench.Caption(results, c), "\n", "\n    "))
	}
	fmt.Fprintln(&table)
	bench.Table(&table, results, cells)
	fmt.Print(table.String())
	if werr := os.WriteFile(filepath.Join(*out, "table.txt"), []byte(table.String()), 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", werr)
	}
	if cerr := bench.WriteCSV(filepath.Join(*out, "summary.csv"), results, cells); cerr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", cerr)
	}
	figs, perr := bench.Plots(*out, results, cells)
	if perr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", perr)
	}
	title := fmt.Sprintf("echobench comparison, BENCH=%s", *level)
	if ierr := bench.WriteIndex(*out, title, table.String(), figs, runNotes(*level, lim, cells)); ierr != nil {
		fmt.Fprintf(os.Stderr, "echocompare: %v\n", ierr)
	}
	fmt.Printf("\nfull results: %s (%s)\n", *out, clock(time.Since(start)))
	if err != nil {
		fail(1, "%v", err)
	}
}

// runNotes are the run's conditions for index.md: the level, the fd limit, and each cell note
// (how idle RSS, the rate grid, the knee and the largest connection count are taken).
func runNotes(level string, lim bench.Limits, cells []bench.Cell) []string {
	notes := []string{
		"BENCH=" + level + "; every run a fresh server, models and external rows alike on CPU 0, echobench on CPU 1",
		fmt.Sprintf("RLIMIT_NOFILE hard limit %d per process: at most %d connections for one server", lim.NoFile, lim.MaxConns()),
	}
	seen := map[string]bool{}
	for _, c := range cells {
		if c.Note != "" && !seen[c.Note] {
			seen[c.Note] = true
			notes = append(notes, c.Note)
		}
	}
	return notes
}

// pickRows are the default rows and the C reference, narrowed to -models if given.
func pickRows(binDir, models string) ([]bench.Row, error) {
	rows := append(bench.DefaultRows(), bench.CRefRow(binDir))
	if models == "" {
		return rows, nil
	}
	want := map[string]bool{}
	for _, m := range strings.Split(models, ",") {
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
		var unknown []string
		for m := range want {
			unknown = append(unknown, m)
		}
		return nil, fmt.Errorf("unknown rows %v; known: %s", unknown, rowNames(binDir))
	}
	return picked, nil
}

// overrideWindow applies -warmup and -d to every cell but the knee searches, whose probes have
// their own windows. echobench takes the last of two values of a flag, so appending is enough.
func overrideWindow(cells []bench.Cell, warmup, duration time.Duration) []bench.Cell {
	for i := range cells {
		c := &cells[i]
		if c.Sweep == bench.SweepKnee {
			continue
		}
		if warmup > 0 {
			c.Args = append(c.Args, "-warmup", warmup.String())
			c.Warmup = warmup
		}
		if duration > 0 {
			c.Args = append(c.Args, "-d", duration.String())
			c.Duration = duration
		}
	}
	return cells
}

func rowNames(binDir string) string {
	var n []string
	for _, r := range append(bench.DefaultRows(), bench.CRefRow(binDir)) {
		n = append(n, r.Name)
	}
	return strings.Join(n, ",")
}

// clock formats an elapsed time as the progress lines show it: 1m05s.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
