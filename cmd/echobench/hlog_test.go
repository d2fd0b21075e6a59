package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TestHlogReadsBack writes the interval log of two runs and reads it back with hdrhistogram-go's
// own reader: every measured second is one interval, each run's intervals add up to the run's
// messages in the window, their merged p99 is the JSON's within the per-second histograms'
// precision, and the runs follow one another in time.
func TestHlogReadsBack(t *testing.T) {
	addr := startTestServer(t, func(buf []byte, _ int) []byte { return buf })
	dir := t.TempDir()
	out, hlog := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.hlog")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-pin=false", "-c", "4", "-d", "2s", "-warmup", "0", "-repeat", "2", "-o", out, "-hlog", hlog}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("exit status %d\n%s", status, stderr.String())
	}
	rep := readReport(t, out)
	b, err := os.ReadFile(hlog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "#[StartTime: ") || !strings.Contains(string(b), "microseconds") || !strings.Contains(string(b), "[run 2 of 2") {
		t.Errorf("log lacks its start time, unit or run comments:\n%s", b)
	}
	reader := hdrhistogram.NewHistogramLogReader(bytes.NewReader(b))
	var intervals []*hdrhistogram.Histogram
	for {
		h, err := reader.NextIntervalHistogram()
		if err != nil {
			t.Fatalf("read interval %d: %v", len(intervals)+1, err)
		}
		if h == nil {
			break
		}
		intervals = append(intervals, h)
	}
	next := 0
	var lastEndMs int64
	for i, r := range rep.Runs {
		if next+len(r.PerSecond) > len(intervals) {
			t.Fatalf("%d intervals in the log; run %d alone has %d seconds after the first %d", len(intervals), i+1, len(r.PerSecond), next)
		}
		merged := hdrhistogram.New(1, 100_000_000, 2)
		for j, s := range r.PerSecond {
			h := intervals[next+j]
			if h.TotalCount() != int64(s.Messages) {
				t.Errorf("run %d second %d: %d values in the log, %d messages in the JSON", i+1, j+1, h.TotalCount(), s.Messages)
			}
			if h.StartTimeMs() < lastEndMs || h.EndTimeMs()-h.StartTimeMs() != 1000 {
				t.Errorf("run %d second %d: interval %d..%d ms, after one ending at %d", i+1, j+1, h.StartTimeMs(), h.EndTimeMs(), lastEndMs)
			}
			lastEndMs = h.EndTimeMs()
			merged.Merge(h)
		}
		next += len(r.PerSecond)
		if merged.TotalCount() != int64(r.Messages) || r.Messages == 0 {
			t.Errorf("run %d: %d values in the log, %d messages in the window", i+1, merged.TotalCount(), r.Messages)
		}
		// The log's histograms have two significant digits, the JSON's three: the two p99s are
		// the same bucket to within 1 % of the value.
		p99, want := float64(merged.ValueAtQuantile(99)), r.Latency.P99us
		if math.Abs(p99-want) > 0.01*want+1 {
			t.Errorf("run %d: p99 %.0f µs in the log, %.0f µs in the JSON", i+1, p99, want)
		}
	}
	if next != len(intervals) {
		t.Errorf("%d intervals in the log, %d seconds in the runs", len(intervals), next)
	}
}
