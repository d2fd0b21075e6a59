package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"echobench/report"
)

// TestProcs splits a load over three echobench processes against one -model server and checks
// that the merged report holds every connection and that the server's own counts equal the
// merged bytes, which runProcs says it checked.
func TestProcs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "merged.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-model", "stdnet", "-procs", "3", "-c", "10", "-d", "500ms", "-warmup", "200ms", "-pin=false", "-o", out}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", status, stdout.String(), stderr.String())
	}
	var m report.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Agents) != 3 || m.Summary.ConnsEstablished != 10 {
		t.Errorf("merged %d processes and %d connections, want 3 and 10", len(m.Agents), m.Summary.ConnsEstablished)
	}
	for _, w := range m.Warnings {
		if strings.Contains(w, "byte check") {
			t.Errorf("the server's counts differ from the merged ones: %s", w)
		}
	}
	if !strings.Contains(stdout.String(), "server: accepted 10") {
		t.Errorf("no server counts in the output:\n%s", stdout.String())
	}
	// The server's cost is accounted once, by this process, over the merged window.
	if sv := m.Server; sv == nil || sv.Source != "proc" || sv.WindowCPUS <= 0 || sv.CPUPerMsgUs <= 0 || sv.PeakThreads < 1 {
		t.Errorf("merged server accounting %+v: want the server's CPU per message over the merged window", sv)
	} else if m.Summary.ServerCPUPerMsgUs != sv.CPUPerMsgUs || m.Summary.ServerCPUS != sv.CPUS {
		t.Errorf("summary server CPU %v s, %v µs/msg: want the merged server's %v, %v", m.Summary.ServerCPUS, m.Summary.ServerCPUPerMsgUs, sv.CPUS, sv.CPUPerMsgUs)
	}
	for _, r := range m.Runs {
		if r.Server != nil {
			t.Errorf("an agent accounted the server itself: %+v", r.Server)
		}
	}
	if !strings.Contains(stdout.String(), "once for all agents") || !strings.Contains(stdout.String(), "µs per message") {
		t.Errorf("the merged table does not show the server's CPU per message:\n%s", stdout.String())
	}
	if status := run([]string{"-model", "stdnet", "-procs", "3", "-c", "2"}, &stdout, &stderr); status != exitUsage {
		t.Errorf("-procs 3 -c 2: exit %d, want a usage error", status)
	}
}
