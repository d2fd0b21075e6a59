package bench

import (
	"strings"
	"testing"

	"echobench/report"
)

// TestTableRanksAndExplains checks the table a user reads: rows ranked by throughput, ratios to
// the baseline, and a row that could not run shown as n/a with its reason rather than dropped.
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
	if !strings.Contains(lines[1], "epoll") || !strings.Contains(lines[2], "stdnet") || !strings.Contains(lines[3], "uring") {
		t.Fatalf("rows not ranked epoll, stdnet, uring:\n%s", out)
	}
	if !strings.Contains(lines[1], "2.50") || !strings.Contains(lines[1], "1.20") {
		t.Errorf("epoll row lacks its ratios to stdnet (2.50, 1.20):\n%s", out)
	}
	if !strings.Contains(lines[3], "n/a") || !strings.Contains(out, "n/a: uring, 1000x64B: model uring unavailable: io_uring_setup: EPERM") {
		t.Errorf("unavailable model not shown as n/a with its reason:\n%s", out)
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
	if !strings.Contains(lines[1], "epoll") || !strings.Contains(lines[1], "5000"+meterMarker) {
		t.Errorf("epoll's p99 lacks the meter-limited marker:\n%s", out)
	}
	if strings.Contains(lines[2], meterMarker) {
		t.Errorf("stdnet's row is marked though no run was meter-limited:\n%s", out)
	}
	if !strings.Contains(out, "meter-limited") || !strings.Contains(out, "epoll/1000x64B (1 of 2 runs; p99: schedule lag 4000 µs is 80% of the latency 5000 µs)") {
		t.Errorf("no note naming the meter-limited cell:\n%s", out)
	}
}
