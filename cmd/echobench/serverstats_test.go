package main

import (
	"bufio"
	"bytes"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"echobench/internal/child"
	"echobench/internal/reexec"
)

// TestServerStats loads an echoserver known only by its address and its stats port, twice: each
// report carries the server's CPU from its own snapshots and bytes that add up to the final count
// the server prints at exit, and merging the two accounts the server once over both windows.
func TestServerStats(t *testing.T) {
	cmd, err := reexec.Command(child.RoleServer, "-model", "stdnet", "-addr", "127.0.0.1:0", "-stats-addr", "127.0.0.1:0", "-quiet")
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	errLines := bufio.NewScanner(stderrPipe)
	var statsAddr string
	for statsAddr == "" && errLines.Scan() {
		statsAddr, _ = strings.CutPrefix(errLines.Text(), "echoserver: stats on ")
	}
	go io.Copy(io.Discard, stderrPipe)
	lines := bufio.NewScanner(stdoutPipe)
	if statsAddr == "" || !lines.Scan() {
		t.Fatal("the server printed no stats address or no address")
	}
	addr := lines.Text()

	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-server-stats", statsAddr, "-pin=false", "-c", "4", "-d", "700ms", "-warmup", "200ms", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitOK {
		t.Fatalf("exit status %d", status)
	}
	rep := readReport(t, out)
	r := rep.Runs[0]
	sv := r.Server
	if sv == nil || sv.Source != "stats" || sv.PID != cmd.Process.Pid {
		t.Fatalf("server accounting %+v: want the server's own, pid %d, from its stats port", sv, cmd.Process.Pid)
	}
	if sv.CPUS <= 0 || sv.WindowCPUS <= 0 || sv.CPUPerMsgUs <= 0 || sv.PeakThreads < 1 || sv.PeakRSSBytes == 0 || sv.Samples < 2 {
		t.Errorf("implausible server accounting: %+v", sv)
	}
	if o, c := sv.WindowOpen, sv.WindowClose; o == nil || c == nil || !c.Time.After(o.Time) || c.UserS+c.SysS < o.UserS+o.SysS || o.PID != sv.PID {
		t.Errorf("window snapshots %+v .. %+v: want the server's, in order", o, c)
	}
	if s := rep.Summary; s.ServerCPUPerMsgUs != sv.CPUPerMsgUs || s.ServerCPUS != sv.CPUS {
		t.Errorf("summary server CPU %v s, %v µs/msg; the run's %v, %v", s.ServerCPUS, s.ServerCPUPerMsgUs, sv.CPUS, sv.CPUPerMsgUs)
	}
	if !strings.Contains(stdout.String(), "µs per message (the server's own snapshots") {
		t.Errorf("the table does not show the server's CPU per message from its snapshots")
	}

	// A second agent's run against the same server, merged with the first: the server is
	// accounted once from the two agents' snapshots, over both windows.
	out2 := filepath.Join(t.TempDir(), "r2.json")
	if status := run([]string{"-addr", addr, "-server-stats", statsAddr, "-pin=false", "-c", "2", "-d", "300ms", "-warmup", "0", "-o", out2}, &stdout, &stderr); status != exitOK {
		t.Fatalf("second run: exit status %d\n%s", status, stderr.String())
	}
	r2 := readReport(t, out2).Runs[0]
	merged := filepath.Join(t.TempDir(), "merged.json")
	stdout.Reset()
	if status := run([]string{"merge", "-o", merged, out, out2}, &stdout, &stderr); status != exitOK {
		t.Fatalf("merge: exit status %d\n%s", status, stderr.String())
	}
	m := readReport(t, merged)
	if ms := m.Server; ms == nil || ms.PID != sv.PID || ms.WindowOpen.Time != sv.WindowOpen.Time || ms.WindowClose.Time != r2.Server.WindowClose.Time || ms.CPUPerMsgUs <= 0 {
		t.Errorf("merged server %+v: want pid %d from the first window's open to the second's close", ms, sv.PID)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	var final child.Snapshot
	for lines.Scan() {
		if s, ok := child.ParseSnapshot(lines.Text()); ok {
			final = s
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	bc, sc := r.ByteCheck, r.ServerCounts
	if bc == nil || sc == nil || bc.Source != "stats" {
		t.Fatalf("byte check %+v, server counts %+v: want both, from the stats port", bc, sc)
	}
	sc2 := r2.ServerCounts
	if sc2 == nil {
		t.Fatal("the second run has no server counts")
	}
	if sc.BytesIn+sc2.BytesIn != final.BytesIn || sc.BytesOut+sc2.BytesOut != final.BytesOut || sc.Accepted+sc2.Accepted != final.Accepted ||
		sc.BytesIn != r.BytesSentTotal || sc.BytesOut != r.BytesReceivedTotal || sc2.BytesIn != r2.BytesSentTotal {
		t.Errorf("the stats port counted %d+%d in, %d+%d out, %d+%d accepted over the two runs; the server's final line %d, %d, %d; echobench sent %d+%d and received %d+%d",
			sc.BytesIn, sc2.BytesIn, sc.BytesOut, sc2.BytesOut, sc.Accepted, sc2.Accepted, final.BytesIn, final.BytesOut, final.Accepted,
			r.BytesSentTotal, r2.BytesSentTotal, r.BytesReceivedTotal, r2.BytesReceivedTotal)
	}
}

// TestServerStatsFlags checks -server-stats' refusals and that -server-pid wins over it, once said.
func TestServerStatsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"-model", "stdnet", "-server-stats", "127.0.0.1:9101"}, "-server-stats goes with -addr"},
		{[]string{"-addr", "127.0.0.1:7", "-server-stats", "192.0.2.1:9101"}, "refusing -server-stats 192.0.2.1:9101"},
	} {
		var stderr bytes.Buffer
		if got := run(tc.args, &bytes.Buffer{}, &stderr); got != exitUsage || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("run(%q) = %d, stderr %q; want %d saying %q", tc.args, got, stderr.String(), exitUsage, tc.says)
		}
	}
	srv, addr := startEchoServer(t)
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-server-pid", strconv.Itoa(srv.Process.Pid), "-server-stats", "127.0.0.1:1", "-pin=false", "-c", "2", "-d", "200ms", "-warmup", "0"}, &stdout, &stderr)
	if status != exitOK || strings.Count(stderr.String(), "accounting the server from /proc by -server-pid") != 1 || !strings.Contains(stdout.String(), "server CPU") {
		t.Errorf("-server-pid with -server-stats: exit %d, stderr %q: want the run to account by pid and say so once\n%s", status, stderr.String(), stdout.String())
	}
}
