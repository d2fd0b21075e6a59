// Package bench is the comparison harness behind `make bench`: it runs cmd/echobench against
// every model, each started as its own echoserver process, and ranks them in one table.
//
// Every cell is a separate echobench process with its own server, so one model's crash, leak or
// lingering connections cannot touch the next model's figures. Server and load generator are
// pinned to different CPUs by echobench itself. Repeats alternate the order of the models, so a
// slow drift of the machine (thermal, another tenant) does not always land on the same model.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"echobench/report"
	"echobench/server"
)

// Row is one server configuration in the table: a model and its configuration, such as the pool
// size for pooled models.
type Row struct {
	Name   string        // what the table shows: "blocking", "prefork/128", ...
	Model  string        // -model
	Server server.Config // the server's flags (Config.Args), which echobench passes to its child
}

// Args are the echobench flags that select the row's server.
func (r Row) Args() []string {
	return append([]string{"-model", r.Model}, r.Server.Args()...)
}

// Cell is one load shape every row is measured under. Cells of one sweep differ in one
// parameter, X on that sweep's axis; tables and plots group them by Sweep.
type Cell struct {
	Name  string   // "conns=1000", "size=16KiB", "rate=30000", "reconnect"
	Sweep string   // one of the Sweep constants
	X     float64  // the swept value: connections, bytes, pipeline depth, offered msgs/s
	Args  []string // echobench flags for the load
}

// The sweeps of the matrix: the axis a cell's X is on.
const (
	SweepConns     = "conns"     // closed loop, 64 B, pipeline 1; X = connections
	SweepSize      = "size"      // closed loop, 100 connections; X = message bytes
	SweepPipeline  = "pipeline"  // closed loop, 1,000 × 64 B; X = messages in flight per connection
	SweepReconnect = "reconnect" // one echo per connection; X = connections
	SweepIdle      = "idle"      // mostly idle connections, for RSS per connection; X = connections
	SweepRate      = "rate"      // open loop, 1,000 × 64 B; X = offered msgs/s
	SweepKnee      = "knee"      // -knee search; X = the p99 bound in µs
)

// Baseline is the row every ratio is taken against: what a Go user writes without thinking about
// IO models.
const Baseline = "stdnet"

// DefaultRows are the models `make bench` compares. The pool rows use a pool of 128: smaller
// than the 1,000-connection cell on purpose, because that is what a pool does (the rest of the
// clients wait in the listen backlog and their messages stall), and what the table should show.
func DefaultRows() []Row {
	return []Row{
		{Name: "stdnet", Model: "stdnet"},
		{Name: "epoll", Model: "epoll"},
		{Name: "async", Model: "async"},
		{Name: "uring", Model: "uring"},
		{Name: "select", Model: "select"},
		{Name: "nonblocking", Model: "nonblocking"},
		{Name: "blocking", Model: "blocking"},
		{Name: "blocking/128", Model: "blocking", Server: server.Config{Pool: 128}},
		{Name: "process", Model: "process"},
		{Name: "prefork/128", Model: "process", Server: server.Config{Pool: 128}},
	}
}

// DefaultCells are the two load shapes of the first comparison: many long-lived connections
// exchanging small messages (where the IO model shows), and short connections that do one echo
// each (where the cost of a thread or process per connection shows).
func DefaultCells(warmup, duration time.Duration) []Cell {
	common := []string{"-size", "64", "-warmup", warmup.String(), "-d", duration.String()}
	return []Cell{
		{Name: "1000x64B", Sweep: SweepConns, X: 1000, Args: append([]string{"-c", "1000"}, common...)},
		{Name: "reconnect", Sweep: SweepReconnect, X: 100, Args: append([]string{"-c", "100", "-reconnect", "1"}, common...)},
	}
}

// Config is one comparison run.
type Config struct {
	Echobench string        // path of the echobench binary
	OutDir    string        // where each cell's JSON and the summary go
	Rows      []Row         // servers to compare
	Cells     []Cell        // load shapes
	Repeat    int           // runs of every (row, cell), alternating the row order
	Timeout   time.Duration // a cell that takes longer is killed and shown as n/a
	Log       func(format string, args ...any)
	// Server is configuration every row's server gets (echocompare's server.Config flags); a
	// field a row sets itself, such as prefork/128's pool, wins.
	Server server.Config
}

// Result is one (row, cell) measurement, or the reason there is none.
type Result struct {
	Row     Row
	Cell    string
	Runs    []report.Summary // one per repeat that produced a report
	Rounds  []int            // the repeat round of each of Runs, to pair it with other rows' runs of that round
	Knees   []report.Knee    // SweepKnee cells: each run's -knee search (its JSON "knee")
	NA      string           // why the row could not run the cell; empty if it did
	Files   []string         // the JSON files behind it
	Warning string           // echobench's warnings, for the notes under the table
}

// Mean returns the mean of f over the runs.
func (r *Result) Mean(f func(report.Summary) float64) float64 {
	if len(r.Runs) == 0 {
		return 0
	}
	sum := 0.0
	for _, s := range r.Runs {
		sum += f(s)
	}
	return sum / float64(len(r.Runs))
}

// Run measures every row under every cell and returns the results in row order, cells within.
func Run(ctx context.Context, cfg Config) ([]*Result, error) {
	if cfg.Repeat < 1 {
		cfg.Repeat = 1
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	results := map[[2]string]*Result{}
	var ordered []*Result
	for _, row := range cfg.Rows {
		for _, cell := range cfg.Cells {
			r := &Result{Row: row, Cell: cell.Name}
			results[[2]string{row.Name, cell.Name}] = r
			ordered = append(ordered, r)
		}
	}
	for rep := 0; rep < cfg.Repeat; rep++ {
		rows := append([]Row(nil), cfg.Rows...)
		if rep%2 == 1 { // alternate the order so drift does not always favour the same model
			for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
				rows[i], rows[j] = rows[j], rows[i]
			}
		}
		for _, cell := range cfg.Cells {
			for _, row := range rows {
				if err := ctx.Err(); err != nil {
					return ordered, err
				}
				r := results[[2]string{row.Name, cell.Name}]
				if r.NA != "" && len(r.Runs) == 0 {
					continue // it could not run the first time; it will not now
				}
				runCell(ctx, cfg, row, cell, rep, r)
			}
		}
	}
	return ordered, nil
}

func runCell(ctx context.Context, cfg Config, row Row, cell Cell, rep int, r *Result) {
	name := fmt.Sprintf("%s_%s_%d.json", strings.ReplaceAll(row.Name, "/", "-"), cell.Name, rep)
	out := filepath.Join(cfg.OutDir, name)
	args := append(cellArgs(cfg.Server, row, cell), "-o", out)
	// A report left by an earlier run into the same directory must not pass for this one.
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.NA = fmt.Sprintf("cannot remove stale %s: %v", out, err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, cfg.Echobench, args...)
	// Killing echobench by its pid is enough: it starts its server with Pdeathsig, so the
	// server dies with it.
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = nil
	if cfg.Log != nil {
		cfg.Log("%-13s %-10s run %d: echobench %s", row.Name, cell.Name, rep+1, strings.Join(args, " "))
	}
	start := time.Now()
	err := cmd.Run()
	rep1, rerr := readReport(out)
	switch {
	case rerr == nil && len(rep1.Runs) > 0:
		s := rep1.Summary
		if s.Error != "" && s.MsgsPerSec == 0 && s.NewConnsPerSec == 0 {
			r.NA = firstLine(s.Error)
		} else {
			r.Runs = append(r.Runs, s)
			r.Rounds = append(r.Rounds, rep)
			r.Files = append(r.Files, out)
		}
		if len(rep1.Warnings) > 0 {
			r.Warning = strings.Join(rep1.Warnings, "; ")
		}
	case cctx.Err() != nil && ctx.Err() == nil:
		r.NA = fmt.Sprintf("timed out after %s", cfg.Timeout)
	default:
		reason := lastLine(stderr.String())
		if reason == "" && err != nil {
			reason = err.Error()
		}
		r.NA = reason
	}
	if cfg.Log != nil {
		if r.NA != "" {
			cfg.Log("%-13s %-10s n/a after %.1fs: %s", row.Name, cell.Name, time.Since(start).Seconds(), r.NA)
		} else {
			s := r.Runs[len(r.Runs)-1]
			cfg.Log("%-13s %-10s %.0f msgs/s, %.1f s", row.Name, cell.Name, s.MsgsPerSec, time.Since(start).Seconds())
		}
	}
}

// cellArgs are the echobench flags for one row under one cell. The shared server flags come
// before the row's, because of two values for one flag the later wins.
func cellArgs(shared server.Config, row Row, cell Cell) []string {
	return append(append(shared.Args(), row.Args()...), cell.Args...)
}

func readReport(path string) (*report.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Runs) == 0 && r.Error != "" {
		return nil, errors.New(r.Error)
	}
	return &r, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
