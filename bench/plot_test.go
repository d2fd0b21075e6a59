package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"echobench/report"
)

// writeReport writes a small echobench JSON report with a latency spectrum, as echobench would.
func writeReport(t *testing.T, dir, name string, conns, reconnect int, scale int64) string {
	t.Helper()
	rep := report.Report{
		Schema: report.Schema,
		Settings: report.Settings{
			Model: name, Conns: conns, Sizes: []int{64}, Pipeline: 1, Reconnect: reconnect,
			DurationS: 1, WarmupS: 0.3, Repeat: 1,
		},
		Env: report.Env{
			Start: "2026-11-25T03:00:00Z", Kernel: "6.0.0", GoVersion: "go1.26", CPUModel: "test CPU",
			Cores: 2, GOMAXPROCS: 1, Commit: "0123456789abcdef",
			Pinning: report.Pinning{Enabled: true, ServerCPUs: "0", ClientCPUs: "1"},
		},
		Runs: []report.Run{{
			MsgsPerSec: 1000,
			Latency: report.Latency{Spectrum: []report.Percentile{
				{Percentile: 0, ValueUs: 0},
				{Percentile: 50, ValueUs: 10 * scale},
				{Percentile: 90, ValueUs: 20 * scale},
				{Percentile: 99, ValueUs: 50 * scale},
				{Percentile: 99.9, ValueUs: 200 * scale},
				{Percentile: 100, ValueUs: 300 * scale},
			}},
		}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPlots(t *testing.T) {
	dir := t.TempDir()
	cells := DefaultCells(300*time.Millisecond, time.Second)
	summary := func(msgs, conns, cpu float64, rss uint64) report.Summary {
		return report.Summary{MsgsPerSec: msgs, NewConnsPerSec: conns, ServerCPUPct: cpu, ServerPeakRSSBytes: rss}
	}
	results := []*Result{
		{Row: Row{Name: "stdnet"}, Cell: cells[0].Name,
			Runs:  []report.Summary{summary(75000, 0, 67, 15<<20)},
			Files: []string{writeReport(t, dir, "stdnet_main", 1000, 0, 1)}},
		{Row: Row{Name: "stdnet"}, Cell: cells[1].Name,
			Runs:  []report.Summary{summary(13000, 13000, 54, 16<<20)},
			Files: []string{writeReport(t, dir, "stdnet_reconnect", 100, 1, 1)}},
		{Row: Row{Name: "epoll"}, Cell: cells[0].Name,
			Runs:  []report.Summary{summary(88000, 0, 61, 7<<20)},
			Files: []string{writeReport(t, dir, "epoll_main", 1000, 0, 2)}},
		{Row: Row{Name: "epoll"}, Cell: cells[1].Name,
			Runs: []report.Summary{summary(2500, 2500, 8, 7<<20)}},
		{Row: Row{Name: "select"}, Cell: cells[0].Name,
			NA: "select(2) cannot watch fd 1024 or above; use -model epoll"},
		{Row: Row{Name: "select"}, Cell: cells[1].Name,
			Runs: []report.Summary{summary(11000, 11000, 41, 11<<20)}},
	}

	out := filepath.Join(dir, "plots")
	paths, err := Plots(out, results, cells)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"throughput.png", "latency.png", "reconnect.png", "cost.png"}
	if len(paths) != len(want) {
		t.Fatalf("Plots wrote %v, want %v", paths, want)
	}
	for i, name := range want {
		if filepath.Base(paths[i]) != name {
			t.Errorf("plot %d is %s, want %s", i, paths[i], name)
		}
		fi, err := os.Stat(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s is empty", paths[i])
		}
		b, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s is not a PNG", paths[i])
		}
	}
}

// A cell where no row produced a report must still give figures, saying so, not fail or panic
// on an empty log axis.
func TestPlotsWithoutReports(t *testing.T) {
	cells := DefaultCells(300*time.Millisecond, time.Second)
	var results []*Result
	for _, c := range cells {
		results = append(results,
			&Result{Row: Row{Name: "stdnet"}, Cell: c.Name, NA: "server died"},
			&Result{Row: Row{Name: "epoll"}, Cell: c.Name, NA: "timed out after 40s"})
	}
	paths, err := Plots(t.TempDir(), results, cells)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("Plots wrote %v, want 4 figures", paths)
	}
}

func TestConditionsCaption(t *testing.T) {
	dir := t.TempDir()
	cells := DefaultCells(300*time.Millisecond, time.Second)
	results := []*Result{{Row: Row{Name: "stdnet"}, Cell: cells[0].Name,
		Runs:  []report.Summary{{MsgsPerSec: 1}},
		Files: []string{writeReport(t, dir, "stdnet", 1000, 0, 1)}}}
	got := conditions(cells[0], results, loadReports(results))
	for _, want := range []string{"1000x64B", "1000 conns × 64 B", "300ms warmup + 1s measured", "server on CPU 0, echobench on CPU 1", "GOMAXPROCS 1", "1 run(s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("caption %q lacks %q", got, want)
		}
	}
}

func TestPercentileLabels(t *testing.T) {
	for nines, want := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		if got := percentileLabel(nines); got != want {
			t.Errorf("percentileLabel(%d) = %q, want %q", nines, got, want)
		}
	}
}
