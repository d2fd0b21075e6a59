package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"echobench/report"
)

// matrixCells is a matrix with every sweep, as `make bench` runs it.
func matrixCells() []Cell {
	var cells []Cell
	for _, c := range []float64{1, 10, 100, 1000, 10000} {
		cells = append(cells, Cell{Name: fmt.Sprintf("conns=%g", c), Sweep: SweepConns, X: c})
	}
	for _, s := range []float64{64, 1024, 16384, 65536} {
		cells = append(cells, Cell{Name: "size=" + fmtBytes(s), Sweep: SweepSize, X: s})
	}
	cells = append(cells,
		Cell{Name: "pipeline=16", Sweep: SweepPipeline, X: 16},
		Cell{Name: "reconnect", Sweep: SweepReconnect, X: 100},
		Cell{Name: "idle=1000", Sweep: SweepIdle, X: 1000},
		Cell{Name: "idle=10000", Sweep: SweepIdle, X: 10000})
	for _, r := range []float64{5000, 10000, 20000, 40000, 60000, 80000, 100000, 150000, 200000} {
		cells = append(cells, Cell{Name: fmt.Sprintf("rate=%g", r), Sweep: SweepRate, X: r})
	}
	return append(cells,
		Cell{Name: "knee=1ms", Sweep: SweepKnee, X: 1000},
		Cell{Name: "knee=10ms", Sweep: SweepKnee, X: 10000})
}

// matrixResults fills every cell for rows, three rounds each, with a per-round drift shared by
// all rows and a little noise of each row's own, the way the machine behaves.
func matrixResults(rows []string, cells []Cell) []*Result {
	drift := []float64{1, 0.9, 1.1}
	var results []*Result
	for i, row := range rows {
		for j, c := range cells {
			r := &Result{Row: Row{Name: row}, Cell: c.Name}
			results = append(results, r)
			if row == "select" && c.X >= 1024 && (c.Sweep == SweepConns || c.Sweep == SweepIdle) {
				r.NA = "select(2) cannot watch fd 1024 or above; use -model epoll"
				continue
			}
			factor := 1 + 0.15*float64(i)
			for round, d := range drift {
				noise := 1 + 0.01*math.Sin(float64(7*i+3*j+round))
				m := 100000 * factor * d * noise
				if c.Sweep == SweepRate {
					m = math.Min(c.X, m)
				}
				s := report.Summary{
					MsgsPerSec: m, MBPerSec: m * 64 / 1e6, NewConnsPerSec: m / 10,
					LatencyP50us: 300 / factor, LatencyP99us: 2000 / factor * d, LatencyP999us: 5000 / factor,
					ServerCPUPct: 90, ClientCPUPct: 95, ServerPeakRSSBytes: uint64(20<<20 + int(c.X)*4096),
					ServerPeakThreads: 4 + i, ServerProcesses: 1, ConnsEstablished: int(c.X), ConnsEchoed: int(c.X),
					BothSaturated: i%2 == 0,
				}
				if c.Sweep == SweepRate && i == 3 {
					s.MeterLimited = &report.MeterLimited{Percentile: 99, LagUs: 900, LatencyUs: 1000, SharePct: 90}
				}
				r.Runs = append(r.Runs, s)
				r.Rounds = append(r.Rounds, round)
				if c.Sweep == SweepKnee {
					r.Knees = append(r.Knees, report.Knee{BoundUs: c.X, RateMsgsPerS: m / 2})
				}
			}
		}
	}
	return results
}

// TestTableFitsTerminal checks every line of the summary of a 12-row matrix with long names
// against TableWidth, and that every table and every n/a is there.
func TestTableFitsTerminal(t *testing.T) {
	rows := []string{Baseline, "epoll", "async", "uring", "select", "nonblocking", "blocking", "blocking/128",
		"process", "prefork/128", "C-ref",
		"my-own-server-with-a-very-long-name -threads 8 -reuseport"}
	cells := matrixCells()
	var b strings.Builder
	Table(&b, matrixResults(rows, cells), cells)
	out := b.String()
	for i, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > TableWidth {
			t.Errorf("line %d is %d runes wide, more than %d:\n%s", i+1, n, TableWidth, l)
		}
	}
	for _, want := range []string{
		"conns=1000: ranked by msgs/s", "reconnect: ranked by new connections/s",
		"msgs/s by connections", "server CPU µs per message", "MB/s by message size", "msgs/s by pipeline depth",
		"RSS per connection", "per extra conn", "p99 latency", "knee", "p99≤1ms", "p99≤10ms", "200k/s", "past saturation",
		"my-own-server-with-a-…",
		"n/a: select at conns=10000, idle=10000: select(2) cannot watch fd 1024 or above; use -model epoll",
		"rate=200000: uring", "(3 of 3 runs; p99: schedule lag 900 µs is 90% of the latency 1000 µs)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("summary:\n%s", out)
	}
}

// TestTableTies checks that ≈ replaces a rank exactly where a row's ratio interval overlaps the
// row above's: uring and epoll are 2× stdnet within noise of each other, async is 1.5× in
// every round, stdnet is the baseline.
func TestTableTies(t *testing.T) {
	cell := Cell{Name: "conns=1000", Sweep: SweepConns, X: 1000}
	base := []float64{100, 90, 110, 105}
	row := func(name string, f ...float64) *Result {
		m := make([]float64, len(base))
		for i := range base {
			m[i] = base[i] * f[i%len(f)]
		}
		return runs(name, cell.Name, m, nil)
	}
	results := []*Result{
		row(Baseline, 1),
		row("async", 1.5),
		row("epoll", 2.0, 1.9, 2.1, 2.0),
		row("uring", 2.05),
		row("blocking", 1.02, 0.98, 1.01, 0.99),
	}
	var b strings.Builder
	Table(&b, results, []Cell{cell})
	out := b.String()
	lines := strings.Split(out, "\n")
	want := []struct{ rank, name string }{{"1", "uring"}, {"≈", "epoll"}, {"3", "async"}, {"4", "stdnet"}, {"≈", "blocking"}}
	for i, w := range want {
		f := strings.Fields(lines[2+i])
		if len(f) < 2 || f[0] != w.rank || f[1] != w.name {
			t.Errorf("table line %d: want rank %s for %s, got %q\n%s", 3+i, w.rank, w.name, lines[2+i], out)
		}
	}
	// The same rule, from the estimates themselves, over the synthetic matrix: every ≈ and every
	// rank number must agree with Overlaps of the ratio intervals of neighbouring lines.
	rows := []string{Baseline, "epoll", "async", "uring", "select", "C-ref"}
	cells := matrixCells()
	results = matrixResults(rows, cells)
	b.Reset()
	Table(&b, results, cells)
	g := newGrid(results)
	lines = strings.Split(b.String(), "\n")[2 : 2+len(rows)]
	var prev *Estimate
	for _, l := range lines {
		f := strings.Fields(l)
		e, ok := StatMsgsPerSec.Ratio(g.at(f[1], cells[3]), g.at(Baseline, cells[3]))
		if !ok {
			t.Fatalf("no ratio for %s", f[1])
		}
		tied := prev != nil && e.Overlaps(*prev)
		if (f[0] == tieMark) != tied {
			t.Errorf("%s: rank %q, but overlapping the row above is %v", f[1], f[0], tied)
		}
		prev = &e
	}
}

// TestTableRanksAndExplains checks the table a user reads: rows ranked by throughput, ratios to
// the baseline, "1 run" where there is no interval, and a row that could not run shown as n/a
// with its reason rather than dropped.
func TestTableRanksAndExplains(t *testing.T) {
	cells := DefaultCells(0, 0)
	mk := func(name string, msgs, conns float64) []*Result {
		return []*Result{
			{Row: Row{Name: name}, Cell: cells[0].Name, Runs: []report.Summary{{MsgsPerSec: msgs, ServerPeakRSSBytes: 8 << 20}}},
			{Row: Row{Name: name}, Cell: cells[1].Name, Runs: []report.Summary{{NewConnsPerSec: conns}}},
		}
	}
	var results []*Result
	results = append(results, mk("stdnet", 100, 50)...)
	results = append(results, mk("epoll", 250, 60)...)
	results = append(results,
		&Result{Row: Row{Name: "uring"}, Cell: cells[0].Name, NA: "model uring unavailable: io_uring_setup: EPERM"},
		&Result{Row: Row{Name: "uring"}, Cell: cells[1].Name, NA: "model uring unavailable: io_uring_setup: EPERM"})
	var b strings.Builder
	Table(&b, results, cells)
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[2], "epoll") || !strings.Contains(lines[3], "stdnet") || !strings.Contains(lines[4], "uring") {
		t.Fatalf("rows not ranked epoll, stdnet, uring:\n%s", out)
	}
	if !strings.Contains(lines[2], "2.50 (1 run)") || !strings.Contains(out, "1.20 (1 run)") || !strings.Contains(lines[2], "1 run") {
		t.Errorf("epoll rows lack their ratios to stdnet (2.50, 1.20) marked as single runs:\n%s", out)
	}
	if !strings.Contains(lines[4], "n/a") || !strings.Contains(out, "n/a: uring at 1000x64B, reconnect: model uring unavailable: io_uring_setup: EPERM") {
		t.Errorf("unavailable model not shown as n/a with its reason:\n%s", out)
	}
	for _, l := range lines[2:4] {
		if strings.Fields(l)[0] == tieMark {
			t.Errorf("single runs called a tie:\n%s", out)
		}
	}
}

// TestTableMarksMeterLimited checks that a p99 echobench's own lateness is part of carries the
// marker in its cell and a note naming the cell, and that an unflagged one carries neither.
func TestTableMarksMeterLimited(t *testing.T) {
	cells := DefaultCells(0, 0)[:1]
	flag := &report.MeterLimited{Percentile: 99, LagUs: 4000, LatencyUs: 5000, SharePct: 80}
	results := []*Result{
		{Row: Row{Name: "stdnet"}, Cell: cells[0].Name, Runs: []report.Summary{{MsgsPerSec: 100, LatencyP99us: 300}, {MsgsPerSec: 100, LatencyP99us: 300}}},
		{Row: Row{Name: "epoll"}, Cell: cells[0].Name, Runs: []report.Summary{{MsgsPerSec: 200, LatencyP99us: 5000, MeterLimited: flag}, {MsgsPerSec: 200, LatencyP99us: 5000}}},
	}
	var b strings.Builder
	Table(&b, results, cells)
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[2], "epoll") || !strings.Contains(lines[2], "5000"+meterMarker) {
		t.Errorf("epoll's p99 lacks the meter-limited marker:\n%s", out)
	}
	if strings.Contains(lines[3], meterMarker) {
		t.Errorf("stdnet's row is marked though no run was meter-limited:\n%s", out)
	}
	if !strings.Contains(out, "meter-limited") || !strings.Contains(out, "1000x64B: epoll (1 of 2 runs; p99: schedule lag 4000 µs is 80% of the latency 5000 µs)") {
		t.Errorf("no note naming the meter-limited cell:\n%s", out)
	}
}

// TestWrap checks that notes wrap at word boundaries within the width, with the continuation
// indent, and that a word longer than a line is cut rather than left overlong.
func TestWrap(t *testing.T) {
	lines := wrap("  alpha beta gamma delta", 12, "    ")
	want := []string{"  alpha beta", "    gamma", "    delta"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("wrap = %q, want %q", lines, want)
	}
	for _, l := range wrap("x "+strings.Repeat("é", 30), 12, "  ") {
		if utf8.RuneCountInString(l) > 12 {
			t.Errorf("line %q over 12 runes", l)
		}
	}
}

// TestNotesReadWholeWarnings checks that a warning holding "; " itself is judged whole, from
// the report, so the advice at its tail is not passed on after its head (a saturation warning,
// noted elsewhere) was filtered out; and that other warnings are passed on.
func TestNotesReadWholeWarnings(t *testing.T) {
	saturated := "echobench used 95% of its 1 usable core(s): the load generator is the bottleneck; give echobench more CPUs or -workers, or lower the load"
	other := "the server ignored SIGTERM and was killed"
	b, err := json.Marshal(report.Report{Runs: []report.Run{{}}, Warnings: []string{saturated, other}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "epoll.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cells := DefaultCells(0, 0)[:1]
	results := []*Result{{Row: Row{Name: "epoll"}, Cell: cells[0].Name, Runs: []report.Summary{{MsgsPerSec: 1}},
		Files: []string{path}, Warning: saturated + "; " + other}}
	var out strings.Builder
	Table(&out, results, cells)
	if strings.Contains(out.String(), "give echobench more CPUs") || !strings.Contains(out.String(), "epoll: "+other) {
		t.Errorf("want the SIGTERM warning and not the saturation advice:\n%s", out.String())
	}
}

// TestKneeNoneHeld checks that a row whose every knee search found no rate within the bound
// reads "none", with its footnote, rather than a rate of 0.
func TestKneeNoneHeld(t *testing.T) {
	cell := Cell{Name: "knee=1ms", Sweep: SweepKnee, X: 1000}
	results := []*Result{
		{Row: Row{Name: Baseline}, Cell: cell.Name, Rounds: []int{0}, Runs: []report.Summary{{MsgsPerSec: 5000}},
			Knees: []report.Knee{{BoundUs: 1000, RateMsgsPerS: 4750}}},
		{Row: Row{Name: "epoll"}, Cell: cell.Name, Rounds: []int{0}, Runs: []report.Summary{{MsgsPerSec: 224}},
			Knees: []report.Knee{{BoundUs: 1000, Note: "no probe held within the budget of 10"}}},
	}
	head := Cell{Name: "conns=1000", Sweep: SweepConns, X: 1000}
	for _, row := range []string{Baseline, "epoll"} {
		results = append(results, &Result{Row: Row{Name: row}, Cell: head.Name, Rounds: []int{0},
			Runs: []report.Summary{{MsgsPerSec: 100000}}})
	}
	var b strings.Builder
	Table(&b, results, []Cell{head, cell})
	out := b.String()
	var epollLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "epoll ") && strings.Contains(out[:strings.Index(out, l)], "knee: ") {
			epollLine = l
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(epollLine), "none") || !strings.Contains(out, "none: no probe held the bound") {
		t.Errorf("epoll's knee line %q, want it to read none, with the footnote, in:\n%s", epollLine, out)
	}
}

// TestTableUDPCell checks the UDP cell's table: its rows by msgs/s, with p99 and loss, and the
// rows without a UDP variant as n/a.
func TestTableUDPCell(t *testing.T) {
	cells := []Cell{{Name: "conns=1000", Sweep: SweepConns, X: 1000}, {Name: "udp", Sweep: SweepUDP, X: 100}}
	var results []*Result
	for i, row := range []string{"stdnet", "epoll", "process"} {
		for _, c := range cells {
			r := &Result{Row: Row{Name: row}, Cell: c.Name}
			results = append(results, r)
			if c.Sweep == SweepUDP && row == "process" {
				r.NA = "process has no UDP variant"
				continue
			}
			s := report.Summary{MsgsPerSec: float64(50000 * (i + 1)), LatencyP99us: 900, ConnsEstablished: int(c.X), ConnsEchoed: int(c.X)}
			if c.Sweep == SweepUDP {
				s.UDP = &report.UDPCounts{Sent: 1000, Lost: uint64(10 * (i + 1)), LossPct: float64(i + 1)}
			}
			r.Runs, r.Rounds = []report.Summary{s}, []int{0}
		}
	}
	var b strings.Builder
	Table(&b, results, cells)
	out := b.String()
	at := strings.Index(out, "udp: UDP, ranked by msgs/s, with loss")
	if at < 0 {
		t.Fatalf("no UDP table:\n%s", out)
	}
	udp := out[at:]
	first, second := strings.Index(udp, "epoll"), strings.Index(udp, "stdnet")
	if first < 0 || second < first || !strings.Contains(udp, "loss %") || !strings.Contains(udp, "2.000") || !strings.Contains(udp, "process") {
		t.Errorf("UDP table, want epoll above stdnet with loss 2.000 and process n/a:\n%s", udp)
	}
}
