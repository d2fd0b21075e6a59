package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/internal/reexec"
	"echobench/report"
	"echobench/server"
)

// TestMain lets the test binary be the server child, as the echobench binary is: with no
// echoserver next to it, package child re-executes the running executable in its reexec role.
func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// TestServerFlagsReachTheChild sets every server.Config flag on echobench's command line and
// checks that the -model child gets each one: a flag added to Config needs no change here.
func TestServerFlagsReachTheChild(t *testing.T) {
	var cfg server.Config
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	var args []string
	fs.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			args = append(args, "-"+f.Name+"=true")
		} else if f.DefValue == "0s" { // a duration
			args = append(args, "-"+f.Name+"=7ms")
		} else {
			args = append(args, "-"+f.Name+"=7")
		}
	})
	if len(args) == 0 {
		t.Fatal("server.Config has no flags")
	}
	// -udp needs a model with a UDP variant; while no model has one, it cannot be sent along.
	model := "epoll"
	if udp := server.UDPNames(); len(udp) > 0 {
		model = udp[0]
	} else {
		args = slices.DeleteFunc(args, func(a string) bool { return a == "-udp=true" })
	}
	o, err := parseFlags(append([]string{"-model", model}, args...), io.Discard)
	if err != nil {
		t.Fatalf("echobench refuses server flags %q: %v", args, err)
	}
	childArgs := child.Options{Model: o.model, Config: o.server}.CommandArgs()
	for _, a := range args {
		if !slices.Contains(childArgs, a) {
			t.Errorf("echobench %s: the child's arguments %q lack it", a, childArgs)
		}
	}
	if _, err := parseFlags(append([]string{"-addr", "127.0.0.1:7"}, args[0]), io.Discard); err == nil {
		t.Errorf("echobench -addr accepts %s, which only a -model child can take", args[0])
	}
}

func TestCheckLoopback(t *testing.T) {
	ctx := context.Background()
	for _, addr := range []string{"127.0.0.1:7000", "127.9.8.7:1", "[::1]:7000", "localhost:7000"} {
		if err := checkLoopback(ctx, "-addr", addr); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", addr, err)
		}
	}
	for _, addr := range []string{"10.0.0.1:7000", "8.8.8.8:53", "[2001:db8::1]:80", "0.0.0.0:7000", ":7000", "127.0.0.1"} {
		if err := checkLoopback(ctx, "-addr", addr); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want a refusal", addr)
		}
	}
	if err := checkLoopback(ctx, "-addr", "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "-allow-remote") {
		t.Errorf("refusal %v does not say how to allow a remote target", err)
	}
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"64", []int{64}},
		{"64,1500", []int{64, 1500}},
		{"64-4096", []int{64, 128, 256, 512, 1024, 2048, 4096}},
		{"100-1000", []int{100, 128, 256, 512, 1000}},
		{"64-64", []int{64}},
		{"1-4", []int{1, 2, 4}},
	} {
		got, err := parseSizes(tc.in, false)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseSizes(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "-5", "a", "64,", "4096-64", "64-x"} {
		if got, err := parseSizes(bad, false); err == nil {
			t.Errorf("parseSizes(%q) = %v, want an error", bad, got)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{}, // neither -addr nor -model
		{"-addr", "127.0.0.1:1", "-model", "stdnet"}, // both
		{"-model", "no-such-model"},
		{"-model", "stdnet", "-c", "0"},
		{"-model", "stdnet", "-size", "0"},
		{"-model", "stdnet", "-nonsense"},
		{"-addr", "10.1.2.3:7000"}, // remote without -allow-remote
	} {
		var stderr bytes.Buffer
		if got := run(args, &bytes.Buffer{}, &stderr); got != exitUsage {
			t.Errorf("run(%q) = %d, want %d; stderr: %s", args, got, exitUsage, stderr.String())
		}
	}
}

// keepAffinity restores the test process's CPU mask and GOMAXPROCS after run pinned it.
func keepAffinity(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		tids, _ := procstat.Tasks(os.Getpid())
		for _, tid := range tids {
			unix.SchedSetaffinity(tid, &mask)
		}
		runtime.GOMAXPROCS(procs)
	})
}

func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("result file is not valid JSON: %v\n%s", err, b)
	}
	return &rep
}

func TestEndToEnd(t *testing.T) {
	keepAffinity(t)
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-model", "stdnet", "-c", "10", "-d", "1s", "-warmup", "0", "-progress", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitOK {
		t.Fatalf("exit status %d", status)
	}
	rep := readReport(t, out)
	s := rep.Summary
	if s.Model != "stdnet" || s.Runs != 1 || rep.Error != "" {
		t.Errorf("summary %+v, error %q", s, rep.Error)
	}
	if s.MsgsPerSec <= 0 || s.MBPerSec <= 0 || s.LatencyP50us <= 0 || s.LatencyP99us < s.LatencyP50us {
		t.Errorf("implausible throughput or latency: %+v", s)
	}
	if s.ConnsEstablished != 10 || s.ConnsFailed != 0 || s.VerifyFailures != 0 {
		t.Errorf("conns %d established, %d failed, %d verify failures; want 10, 0, 0", s.ConnsEstablished, s.ConnsFailed, s.VerifyFailures)
	}
	if s.ServerCPUS <= 0 || s.ServerPeakRSSBytes == 0 || s.ServerPeakThreads < 1 || s.ServerProcesses != 1 || s.ClientCPUS <= 0 {
		t.Errorf("implausible accounting: %+v", s)
	}
	run0 := rep.Runs[0]
	if bc := run0.ByteCheck; bc == nil || bc.ClientSent == 0 || bc.InDiffPct != 0 || bc.OutDiffPct != 0 {
		t.Errorf("byte check %+v: the server and echobench should count the same bytes", run0.ByteCheck)
	}
	if len(run0.Latency.Spectrum) == 0 || len(run0.PerSecond) == 0 {
		t.Errorf("no percentile spectrum (%d) or per-second series (%d)", len(run0.Latency.Spectrum), len(run0.PerSecond))
	}
	if rep.Env.Kernel == "" || rep.Env.GoVersion == "" || rep.Env.Cores == 0 {
		t.Errorf("environment incomplete: %+v", rep.Env)
	}
	if p := rep.Env.Pinning; runtime.NumCPU() >= 2 && (!p.Enabled || p.ServerCPUs != "0" || p.ClientCPUs != "1") {
		t.Errorf("pinning %+v, want server on 0 and client on 1", p)
	} else if !p.Enabled && p.Reason == "" {
		t.Errorf("pinning off without a reason")
	}
	if !strings.Contains(stdout.String(), "msgs/s") {
		t.Errorf("no summary table on stdout")
	}
	// The server child is gone.
	if kids, _ := procstat.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children left behind: %v", kids)
	}
}

// startEchoServer starts the test binary as an echoserver child and returns it and its address.
func startEchoServer(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd, err := reexec.Command(child.RoleServer, "-model", "stdnet", "-addr", "127.0.0.1:0", "-quiet")
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("server printed no address: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestServerKilledMidRunAddr(t *testing.T) {
	srv, addr := startEchoServer(t)
	out := filepath.Join(t.TempDir(), "r.json")
	go func() {
		time.Sleep(1500 * time.Millisecond)
		srv.Process.Kill()
	}()
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-server-pid", strconv.Itoa(srv.Process.Pid), "-pin=false", "-c", "5", "-d", "20s", "-warmup", "0", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitFail {
		t.Fatalf("exit status %d, want %d after the server died", status, exitFail)
	}
	rep := readReport(t, out)
	if rep.Error == "" || len(rep.Runs) != 1 {
		t.Fatalf("report error %q with %d runs; want the death recorded beside a partial run", rep.Error, len(rep.Runs))
	}
	if rep.Runs[0].Messages == 0 {
		t.Errorf("partial run has no messages: %+v", rep.Runs[0])
	}
	if rep.Runs[0].ElapsedS >= 20 {
		t.Errorf("the load ran its whole duration (%gs) against a dead server", rep.Runs[0].ElapsedS)
	}
}

func TestServerKilledMidRunModel(t *testing.T) {
	keepAffinity(t)
	out := filepath.Join(t.TempDir(), "r.json")
	// Kill the server child once it has served a while. It is the child of this test whose
	// command line has -model (echobench also runs git, for the commit id).
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			kids, _ := procstat.Children(os.Getpid())
			for _, kid := range kids {
				cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(kid) + "/cmdline")
				if bytes.Contains(cmdline, []byte("-model\x00stdnet")) {
					time.Sleep(1500 * time.Millisecond)
					unix.Kill(kid, unix.SIGKILL)
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var stdout, stderr bytes.Buffer
	status := run([]string{"-model", "stdnet", "-c", "5", "-d", "20s", "-warmup", "0", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitFail {
		t.Fatalf("exit status %d, want %d after the server died", status, exitFail)
	}
	rep := readReport(t, out)
	if !strings.Contains(rep.Error, "exited mid-run") || len(rep.Runs) != 1 || rep.Runs[0].Messages == 0 {
		t.Fatalf("report error %q, runs %d: want the death recorded beside a partial run", rep.Error, len(rep.Runs))
	}
	if rep.Runs[0].Server == nil || rep.Runs[0].Server.PeakProcesses != 1 {
		t.Errorf("server accounting of the partial run: %+v", rep.Runs[0].Server)
	}
}

// TestVerifyFailureFailsRun loads a server that echoes every byte plus one: the run must end
// with exit status 1, a loud warning and the failures counted.
func TestVerifyFailureFailsRun(t *testing.T) {
	addr := startTestServer(t, func(buf []byte, _ int) []byte {
		for i := range buf {
			buf[i]++
		}
		return buf
	})
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-pin=false", "-c", "2", "-d", "500ms", "-warmup", "0", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitFail {
		t.Fatalf("exit status %d, want %d when echoes are wrong", status, exitFail)
	}
	rep := readReport(t, out)
	if rep.Summary.VerifyFailuresTotal == 0 || len(rep.Runs) != 1 || rep.Runs[0].VerifyFailuresTotal == 0 {
		t.Errorf("summary %+v: want the wrong echoes counted", rep.Summary)
	}
	if !strings.Contains(stderr.String(), "VERIFY FAILED") || !strings.Contains(stdout.String(), "VERIFY FAILED") {
		t.Errorf("no loud warning on stderr and in the table")
	}
}
