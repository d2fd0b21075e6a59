package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"

	"echobench/report"
)

// TestMergeCommand merges two agents' reports through the command and checks the merged file's
// counts, the warning for a setting they disagree on, and the refusals of bad input.
func TestMergeCommand(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, conns := range []int{20, 30} {
		h := hdrhistogram.New(1, 60_000_000, 2)
		for v := range int64(1000) {
			h.RecordValue(v + int64(i))
		}
		r := &report.Report{Settings: report.Settings{Conns: conns, Sizes: []int{64}},
			Runs: []report.Run{{MsgsPerSec: 100, Conns: report.Conns{Established: conns}, BytesSentTotal: 6400}}}
		r.Summarize("epoll", report.Hists{Latency: h})
		p := filepath.Join(dir, []string{"a.json", "b.json"}[i])
		if err := writeJSON(p, r); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out := filepath.Join(dir, "merged.json")
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"merge", "-o", out}, paths...), &stdout, &stderr); code != exitOK {
		t.Fatalf("merge: exit %d; %s%s", code, stdout.String(), stderr.String())
	}
	var m report.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Summary.BytesSentTotal != 12800 || m.Summary.ConnsEstablished != 50 || m.Summary.MsgsPerSec != 200 || len(m.Agents) != 2 {
		t.Errorf("merged summary %+v: want 12800 bytes, 50 connections, 200 msgs/s, 2 agents", m.Summary)
	}
	if !strings.Contains(stdout.String(), "agent 2's conns is 30") {
		t.Errorf("no warning that the agents' -c differ:\n%s", stdout.String())
	}
	for _, args := range [][]string{{"merge", paths[0]}, {"merge", paths[0], filepath.Join(dir, "missing.json")}} {
		stderr.Reset()
		if code := run(args, &stdout, &stderr); code == exitOK || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q: want a failure in one line", args, code, stderr.String())
		}
	}
}
