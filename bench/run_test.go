package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"echobench/report"
)

// fakeEchobench stands in for echobench: it records every call and writes the report a
// function of the call gives, or fails as told.
type fakeEchobench struct {
	mu    sync.Mutex
	calls []fakeCall
	// msgs gives a run's msgs/s; it may also return an error message, written to stderr
	// instead of a report, or "hang" to wait for the timeout.
	msgs func(c fakeCall) (float64, string)
}

type fakeCall struct {
	Row, Cell string // from -model (or "external") and the -o file's name
	Args      []string
	N         int // the call's index
}

func (f *fakeEchobench) exec(ctx context.Context, _ string, args []string, stderr io.Writer) error {
	f.mu.Lock()
	c := fakeCall{Row: flagValue(args, "-model"), Args: args, N: len(f.calls)}
	if c.Row == "" {
		c.Row = "external"
	}
	if pool := flagValue(args, "-pool"); pool != "" {
		c.Row += "/" + pool
	}
	out := flagValue(args, "-o")
	c.Cell = strings.Split(strings.TrimSuffix(out[strings.LastIndex(out, "/")+1:], ".json"), "_")[1]
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	msgs, fail := f.msgs(c)
	switch fail {
	case "":
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	default:
		fmt.Fprintln(stderr, "echobench: "+fail)
		return fmt.Errorf("exit status 1")
	}
	conns, _ := strconv.Atoi(flagValue(args, "-c"))
	s := report.Summary{MsgsPerSec: msgs, NewConnsPerSec: msgs, ConnsEstablished: conns, ConnsEchoed: conns}
	rep := report.Report{Schema: report.Schema, Runs: []report.Run{{MsgsPerSec: msgs}}, Summary: s}
	if bound := flagValue(args, "-knee"); bound != "" {
		d, _ := time.ParseDuration(bound)
		rep.Knee = &report.Knee{BoundUs: float64(d.Microseconds()), RateMsgsPerS: msgs / 2}
	}
	b, _ := json.Marshal(rep)
	if h := flagValue(args, "-hlog"); h != "" {
		os.WriteFile(h, []byte("#[StartTime: 0]\n"), 0o644)
	}
	return os.WriteFile(out, b, 0o644)
}

// callsOf lists the rows called for cell, in order.
func (f *fakeEchobench) callsOf(cell string) []string {
	var rows []string
	for _, c := range f.calls {
		if c.Cell == cell {
			rows = append(rows, c.Row)
		}
	}
	return rows
}

func testRows() []Row {
	return []Row{{Name: "stdnet", Model: "stdnet"}, {Name: "epoll", Model: "epoll"}, {Name: "select", Model: "select"}}
}

func testCells() []Cell {
	return []Cell{
		{Name: "conns=1000", Sweep: SweepConns, X: 1000, Conns: 1000, Adaptive: true, Args: []string{"-c", "1000"}},
		{Name: "conns=10000", Sweep: SweepConns, X: 10000, Conns: 10000, Args: []string{"-c", "10000"}},
		{Name: "pipeline=1", Sweep: SweepPipeline, X: 1, Conns: 1000, Same: "conns=1000", Args: []string{"-c", "1000"}},
		{Name: "knee=1ms", Sweep: SweepKnee, X: 1000, Conns: 1000, Bracket: "conns=1000", Args: []string{"-c", "1000", "-knee", "1ms"}},
	}
}

func resultOf(results []*Result, row, cell string) *Result {
	for _, r := range results {
		if r.Row.Name == row && r.Cell == cell {
			return r
		}
	}
	return nil
}

// TestRunAdaptiveRepeats checks the repeat loop with a fake echobench: an adaptive cell runs
// until Converged says so, its rounds alternate the row order, the other cells run once, an
// alias gets its cell's runs, a row n/a before running is never called, and a knee search is
// bracketed by the row's own closed-loop throughput.
func TestRunAdaptiveRepeats(t *testing.T) {
	fake := &fakeEchobench{msgs: func(c fakeCall) (float64, string) { return 1000 * float64(c.N+1), "" }}
	converged := func(results []*Result, cell Cell, baseline string, tol float64) bool {
		return len(resultOf(results, baseline, cell.Name).Runs) >= 4
	}
	results, err := Run(context.Background(), Config{
		Echobench: "echobench", OutDir: t.TempDir(), Rows: testRows(), Cells: testCells(),
		Repeat: 1, MaxRepeat: 6, Converged: converged, Exec: fake.exec,
		Limits: Limits{NoFile: 20000}, Features: Features{Knee: true, HLog: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	forward, backward := []string{"stdnet", "epoll", "select"}, []string{"select", "epoll", "stdnet"}
	want := slices.Concat(forward, backward, forward, backward)
	if got := fake.callsOf("conns=1000"); !slices.Equal(got, want) {
		t.Errorf("adaptive cell ran %v, want %v", got, want)
	}
	if got := fake.callsOf("conns=10000"); !slices.Equal(got, []string{"stdnet", "epoll"}) {
		t.Errorf("conns=10000 ran %v; select is n/a there and the cell is not adaptive", got)
	}
	if got := fake.callsOf("pipeline=1"); got != nil {
		t.Errorf("an alias cell ran: %v", got)
	}
	head := resultOf(results, "epoll", "conns=1000")
	if !slices.Equal(head.Rounds, []int{0, 1, 2, 3}) || len(head.Files) != 4 || len(head.HLogs) != 4 {
		t.Errorf("epoll conns=1000: rounds %v, %d files, %d hlogs", head.Rounds, len(head.Files), len(head.HLogs))
	}
	if alias := resultOf(results, "epoll", "pipeline=1"); !slices.Equal(alias.Rounds, head.Rounds) || len(alias.Runs) != 4 {
		t.Errorf("alias pipeline=1 got %+v", alias)
	}
	if na := resultOf(results, "select", "conns=10000"); !strings.Contains(na.NA, "FD_SETSIZE") {
		t.Errorf("select at 10000: NA %q", na.NA)
	}
	for _, c := range fake.calls {
		if c.Cell != "knee=1ms" {
			continue
		}
		// The knee ran after the first pass's two rounds of conns=1000, before the others.
		first := resultOf(results, c.Row, "conns=1000").Runs[:2]
		s := (first[0].MsgsPerSec + first[1].MsgsPerSec) / 2
		lo, hi := flagValue(c.Args, "-knee-min"), flagValue(c.Args, "-knee-max")
		if lo != strconv.Itoa(int(s/4)) || hi != strconv.Itoa(int(s*2)) {
			t.Errorf("%s knee bracket %s..%s, want %d..%d from %v msgs/s", c.Row, lo, hi, int(s/4), int(s*2), s)
		}
	}
	if k := resultOf(results, "stdnet", "knee=1ms"); len(k.Knees) != 1 || k.Knees[0].BoundUs != 1000 {
		t.Errorf("knee result %+v", k)
	}
}

// TestRunRepeatCapAndBudget checks that an adaptive cell that never converges stops at
// MaxRepeat, and that a spent budget stops it at the two rounds of the first pass.
func TestRunRepeatCapAndBudget(t *testing.T) {
	never := func([]*Result, Cell, string, float64) bool { return false }
	for _, c := range []struct {
		name   string
		budget time.Duration
		rounds int
	}{{"cap", 0, 3}, {"budget", time.Nanosecond, 2}} {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeEchobench{msgs: func(fakeCall) (float64, string) { return 1000, "" }}
			var logs strings.Builder
			results, err := Run(context.Background(), Config{
				Echobench: "echobench", OutDir: t.TempDir(), Rows: testRows(), Cells: testCells()[:1],
				MaxRepeat: 3, Budget: c.budget, Converged: never, Exec: fake.exec, Limits: Limits{NoFile: 20000},
				Log: func(format string, args ...any) { fmt.Fprintf(&logs, format+"\n", args...) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resultOf(results, "stdnet", "conns=1000").Runs); got != c.rounds {
				t.Errorf("%d rounds, want %d", got, c.rounds)
			}
			if !strings.Contains(logs.String(), "not all within ±5%") {
				t.Errorf("no word that the cell did not converge:\n%s", logs.String())
			}
			if !strings.Contains(logs.String(), "cell 1/1 conns=1000, round 1: stdnet (1/3, run 1 of 6 planned)") || !strings.Contains(logs.String(), "left") {
				t.Errorf("no progress line:\n%s", logs.String())
			}
		})
	}
}

// TestRunFailuresAreNA checks that a failed run, a timed-out one and a run that served only
// some connections are n/a with the reason, and that a later round's failure keeps the
// earlier rounds.
func TestRunFailuresAreNA(t *testing.T) {
	fake := &fakeEchobench{msgs: func(c fakeCall) (float64, string) {
		switch {
		case c.Row == "epoll":
			return 0, "cannot start the server: boom"
		case c.Row == "select" && c.Cell == "conns=1000":
			return 0, "hang"
		case c.Row == "stdnet" && c.N >= 3:
			return 0, "second round broke"
		}
		return 1000, ""
	}}
	rows := testRows()
	results, err := Run(context.Background(), Config{
		Echobench: "echobench", OutDir: t.TempDir(), Rows: rows, Cells: testCells()[:1],
		MaxRepeat: 2, Timeout: 200 * time.Millisecond, Exec: fake.exec, Limits: Limits{NoFile: 20000},
		Converged: func([]*Result, Cell, string, float64) bool { return false },
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(results, "epoll", "conns=1000"); r.NA != "echobench: cannot start the server: boom" {
		t.Errorf("failed run: NA %q", r.NA)
	}
	if r := resultOf(results, "select", "conns=1000"); !strings.Contains(r.NA, "timed out after 200ms") {
		t.Errorf("hung run: NA %q", r.NA)
	}
	if got := fake.callsOf("conns=1000"); !slices.Equal(got, []string{"stdnet", "epoll", "select", "stdnet"}) {
		t.Errorf("calls %v: a row n/a in its first round ran again", got)
	}
	if r := resultOf(results, "stdnet", "conns=1000"); len(r.Runs) != 1 || r.NA != "" || !strings.Contains(r.Warning, "round 2: echobench: second round broke") {
		t.Errorf("later failure: %+v", r)
	}

	backlog := &fakeEchobench{msgs: func(fakeCall) (float64, string) { return 1000, "" }}
	exec := func(ctx context.Context, path string, args []string, stderr io.Writer) error {
		// Serve few of the connections asked for: -c says 1000, the report says 128 echoed.
		if err := backlog.exec(ctx, path, args, stderr); err != nil {
			return err
		}
		out := flagValue(args, "-o")
		rep, _ := readReport(out)
		rep.Summary.ConnsEchoed = 128
		b, _ := json.Marshal(rep)
		return os.WriteFile(out, b, 0o644)
	}
	results, err = Run(context.Background(), Config{Echobench: "echobench", OutDir: t.TempDir(), Rows: rows[:1],
		Cells: testCells()[:1], Exec: exec, Limits: Limits{NoFile: 20000}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(results, "stdnet", "conns=1000"); !strings.Contains(r.NA, "only 128 of 1000 connections were echoed") || len(r.Runs) != 0 {
		t.Errorf("backlog: %+v", r)
	}
	// A later cell of as many connections is n/a without running; fewer, or short ones, run.
	cells := []Cell{
		{Name: "conns=1000", Sweep: SweepConns, Conns: 1000, Args: []string{"-c", "1000"}},
		{Name: "conns=10", Sweep: SweepConns, Conns: 10, Args: []string{"-c", "10"}},
		{Name: "rate=1", Sweep: SweepRate, Conns: 1000, Args: []string{"-c", "1000", "-rate", "1"}},
		{Name: "reconnect", Sweep: SweepReconnect, Conns: 1000, Reconnect: true, Args: []string{"-c", "1000"}},
	}
	backlog.calls = nil
	results, err = Run(context.Background(), Config{Echobench: "echobench", OutDir: t.TempDir(), Rows: rows[:1],
		Cells: cells, Exec: exec, Limits: Limits{NoFile: 20000}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resultOf(results, "stdnet", "rate=1"); !strings.HasPrefix(r.NA, "not run: at conns=1000, only 128 of 1000") {
		t.Errorf("carried n/a: %q", r.NA)
	}
	var ran []string
	for _, c := range backlog.calls {
		ran = append(ran, c.Cell)
	}
	if !slices.Equal(ran, []string{"conns=1000", "conns=10", "reconnect"}) {
		t.Errorf("ran %v", ran)
	}
}

// TestRunArgs checks the echobench command line of a model row: the shared server flags, the
// row's (which win), the cell's, -o and -hlog.
func TestRunArgs(t *testing.T) {
	fake := &fakeEchobench{msgs: func(fakeCall) (float64, string) { return 1000, "" }}
	dir := t.TempDir()
	row := Row{Name: "prefork/128", Model: "process"}
	row.Server.Pool = 128
	cfg := Config{Echobench: "echobench", OutDir: dir, Rows: []Row{row},
		Cells: []Cell{{Name: "conns=10", Sweep: SweepConns, Conns: 10, Args: []string{"-c", "10", "-d", "1s"}}},
		Exec:  fake.exec, Limits: Limits{NoFile: 20000}, Features: Features{HLog: true}}
	cfg.Server.ReusePort = true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want := []string{"-reuseport=true", "-model", "process", "-pool=128", "-c", "10", "-d", "1s",
		"-o", dir + "/prefork-128_conns=10_0.json", "-hlog", dir + "/prefork-128_conns=10_0.hlog"}
	if len(fake.calls) != 1 || !slices.Equal(fake.calls[0].Args, want) {
		t.Errorf("args %q\nwant %q", fake.calls[0].Args, want)
	}
	if _, err := os.Stat(dir + "/env.json"); err != nil {
		t.Errorf("no env.json: %v", err)
	}
}
