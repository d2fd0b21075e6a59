package report

import (
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// agentWithSnapshots is one agent's report of a run against a server whose stats port it polled:
// its window opened at open and closed at close (seconds after t0 on the server's clock), when
// the server had used cpuOpen and cpuClose seconds (a fifth of it system time).
func agentWithSnapshots(t0 time.Time, pid int, started time.Time, open, close, cpuOpen, cpuClose float64, messages uint64) *Report {
	snap := func(at, cpu float64) *ServerSnapshot {
		return &ServerSnapshot{PID: pid, Started: started, Time: t0.Add(time.Duration(at * float64(time.Second))), UserS: cpu * 0.8, SysS: cpu * 0.2}
	}
	h := hdrhistogram.New(1, 60_000_000, 2)
	h.RecordValue(100)
	r := &Report{Settings: Settings{Conns: 10, Sizes: []int{64}},
		Runs: []Run{{Messages: messages, MsgsPerSec: float64(messages) / (close - open), Conns: Conns{Established: 10},
			WindowStart: t0.Add(time.Duration(open * float64(time.Second))), WindowEnd: t0.Add(time.Duration(close * float64(time.Second))),
			Server: &ServerAccounting{PID: pid, Source: "stats", CPUS: 99, CPUPct: 99, PeakThreads: 5, Samples: 20,
				WindowOpen: snap(open, cpuOpen), WindowClose: snap(close, cpuClose)}}}}
	r.Summarize("", Hists{Latency: h})
	return r
}

// TestMergeServerSnapshots checks that merging agents' snapshots of one server accounts it once,
// from the earliest window open to the latest close, against every agent's messages; and that
// agents without snapshots, or with snapshots of different servers, leave the cost out and say so.
func TestMergeServerSnapshots(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	started := t0.Add(-time.Minute)
	// Agent 2 opens 0.1 s before agent 1 and closes 0.2 s after: 4.3 s of the server's clock, in
	// which it went from 1.0 to 3.15 s of CPU, for 1,000 + 1,500 messages.
	reps := []*Report{
		agentWithSnapshots(t0, 42, started, 1.0, 5.0, 1.05, 3.0, 1000),
		agentWithSnapshots(t0, 42, started, 0.9, 5.2, 1.0, 3.15, 1500),
	}
	m, _, err := Merge(reps)
	if err != nil {
		t.Fatal(err)
	}
	sv := m.Server
	if sv == nil {
		t.Fatalf("no merged server; warnings %q", m.Warnings)
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if !near(sv.WindowCPUS, 2.15) || !near(sv.WindowUserS, 2.15*0.8) || !near(sv.CPUPerMsgUs, 2.15/2500*1e6) || !near(sv.CPUPct, 2.15/4.3*100) {
		t.Errorf("merged server %+v: want 2.15 s of CPU (80%% user), %.0f µs per message, %.0f%% of a core", sv, 2.15/2500*1e6, 2.15/4.3*100)
	}
	if sv.PID != 42 || sv.PeakThreads != 5 || sv.Samples != 40 {
		t.Errorf("merged server pid %d, peak threads %d, samples %d: want 42, 5, 40", sv.PID, sv.PeakThreads, sv.Samples)
	}
	if s := m.Summary; !near(s.ServerCPUS, 2.15) || !near(s.ServerCPUPerMsgUs, sv.CPUPerMsgUs) {
		t.Errorf("summary server CPU %v s, %v µs/msg: want the merged server's, not the agents' 99 s", s.ServerCPUS, s.ServerCPUPerMsgUs)
	}
	var table strings.Builder
	m.WriteTable(&table)
	if !strings.Contains(table.String(), "once for all agents") || !strings.Contains(table.String(), "860.00 µs per message") {
		t.Errorf("the table does not show the merged server:\n%s", table.String())
	}

	other := agentWithSnapshots(t0, 43, started, 0.9, 5.2, 1.0, 3.15, 1500)
	restarted := agentWithSnapshots(t0, 42, started.Add(time.Second), 0.9, 5.2, 1.0, 3.15, 1500)
	plain := agentWithSnapshots(t0, 42, started, 0.9, 5.2, 1.0, 3.15, 1500)
	plain.Runs[0].Server.WindowOpen, plain.Runs[0].Server.WindowClose = nil, nil // -server-pid: no snapshots
	for _, tc := range []struct {
		name  string
		agent *Report
		says  string
	}{
		{"another pid", other, "not one server"},
		{"the same pid restarted", restarted, "not one server"},
		{"an agent without snapshots", plain, "no snapshots of the server"},
	} {
		m, _, err := Merge([]*Report{reps[0], tc.agent})
		if err != nil {
			t.Fatal(err)
		}
		if m.Server != nil || m.Summary.ServerCPUS != 0 || m.Summary.ServerCPUPerMsgUs != 0 {
			t.Errorf("%s: merged server %+v, summary %v s: want the cost left out", tc.name, m.Server, m.Summary.ServerCPUS)
		}
		if !strings.Contains(strings.Join(m.Warnings, "\n"), tc.says) {
			t.Errorf("%s: warnings %q, want one saying %q", tc.name, m.Warnings, tc.says)
		}
		var table strings.Builder
		m.WriteTable(&table)
		// Each agent's own view stays in its run; the summary has no server figures to show.
		if _, summary, _ := strings.Cut(table.String(), "summary of"); strings.Contains(summary, "server CPU") {
			t.Errorf("%s: the summary shows a server CPU it does not have:\n%s", tc.name, table.String())
		}
	}

	// Agents that accounted no server at all merge with nothing said about it.
	for _, r := range reps {
		r.Runs[0].Server = nil
	}
	if m, _, _ := Merge(reps); m.Server != nil || len(m.Warnings) != 0 {
		t.Errorf("agents without a server: merged server %+v, warnings %q; want neither", m.Server, m.Warnings)
	}
}
