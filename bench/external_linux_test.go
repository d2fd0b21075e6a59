package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
	"echobench/internal/reexec"
)

// echoserverCommand is a -server command that runs this test binary as an echoserver (TestMain
// calls reexec.Run), on the port the harness chooses.
func echoserverCommand(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	return "env " + reexec.Env + "=" + child.RoleServer + " " + shellQuote(exe) + " -model epoll -addr 127.0.0.1:{port}"
}

// TestExternalRowStartsAndStops runs an external row through Run with a fake echobench: each
// cell gets a fresh server, pinned, already accepting, whose address and pid reach echobench's
// command line, and which is stopped and reaped after the cell.
func TestExternalRowStartsAndStops(t *testing.T) {
	row, err := ParseServer("mine=" + echoserverCommand(t))
	if err != nil {
		t.Fatal(err)
	}
	var cpus []int
	if online, err := affinity.Online(); err == nil && len(online) >= 2 {
		cpus = online[:1]
	}
	var pids []int
	fake := &fakeEchobench{msgs: func(fakeCall) (float64, string) { return 1000, "" }}
	exec := func(ctx context.Context, path string, args []string, stderr io.Writer) error {
		addr, pid := flagValue(args, "-addr"), flagValue(args, "-server-pid")
		if !strings.HasPrefix(addr, "127.0.0.1:") || flagValue(args, "-model") != "" {
			t.Errorf("external args %q", args)
		}
		n, err := strconv.Atoi(pid)
		if err != nil {
			t.Fatalf("-server-pid %q", pid)
		}
		pids = append(pids, n)
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("the server at %s does not accept: %v", addr, err)
		}
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Errorf("echo %q, %v", buf, err)
		}
		c.Close()
		if cpus != nil {
			if on, total, err := affinity.Check(n, cpus); err != nil || on != total {
				t.Errorf("server %d: %d of %d threads on CPU %v (%v)", n, on, total, cpus, err)
			}
		}
		return fake.exec(ctx, path, args, stderr)
	}
	cells := []Cell{
		{Name: "conns=1", Sweep: SweepConns, Conns: 1, Args: []string{"-c", "1"}},
		{Name: "conns=10", Sweep: SweepConns, Conns: 10, Args: []string{"-c", "10"}},
	}
	results, err := Run(context.Background(), Config{Echobench: "echobench", OutDir: t.TempDir(), Rows: []Row{row},
		Cells: cells, Exec: exec, ServerCPUs: cpus, Limits: Limits{NoFile: 20000}, StopGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.NA != "" || len(r.Runs) != 1 {
			t.Errorf("%s: NA %q, %d runs", r.Cell, r.NA, len(r.Runs))
		}
	}
	if len(pids) != 2 || pids[0] == pids[1] {
		t.Fatalf("server pids %v: want a fresh server per cell", pids)
	}
	for _, pid := range pids {
		// Reaped, so the pid is gone (or already someone else's, which has no echoserver role).
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); err == nil && strings.Contains(string(b), reexec.Env) {
			t.Errorf("server %d still runs after its cell", pid)
		}
	}
}

// TestExternalFailures checks that a server that does not start, and one that dies during a
// run, make the cell n/a with the reason.
func TestExternalFailures(t *testing.T) {
	if _, err := startExternal(Row{Name: "bad", Command: "exit 3 # {port}"}, nil); err == nil || !strings.Contains(err.Error(), "exited before accepting") {
		t.Errorf("a server that exits at once: %v", err)
	}
	row := Row{Name: "dies", Command: echoserverCommand(t)}
	fake := &fakeEchobench{msgs: func(fakeCall) (float64, string) { return 1000, "" }}
	exec := func(ctx context.Context, path string, args []string, stderr io.Writer) error {
		pid, _ := strconv.Atoi(flagValue(args, "-server-pid"))
		syscall.Kill(pid, syscall.SIGKILL) // the server crashes mid-run
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // until it is reaped
		}
		return fake.exec(ctx, path, args, stderr)
	}
	results, err := Run(context.Background(), Config{Echobench: "echobench", OutDir: t.TempDir(), Rows: []Row{row},
		Cells: []Cell{{Name: "conns=1", Sweep: SweepConns, Conns: 1, Args: []string{"-c", "1"}}}, Exec: exec,
		Limits: Limits{NoFile: 20000}})
	if err != nil {
		t.Fatal(err)
	}
	if na := results[0].NA; !strings.Contains(na, "the server exited during the run") || !strings.Contains(na, "killed") {
		t.Errorf("crashed server: NA %q", na)
	}
}

// TestExternalStopKillsAfterGrace checks the SIGKILL after the grace for a server that ignores
// SIGTERM.
func TestExternalStopKillsAfterGrace(t *testing.T) {
	// The shell ignores SIGTERM and, once the echoserver has exited on it, lingers.
	e, err := startExternal(Row{Name: "stubborn", Command: "sh -c " + shellQuote("trap '' TERM; "+echoserverCommand(t)+"; sleep 60")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.Stop(300 * time.Millisecond)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop took %v", took)
	}
	// The shell is reaped; its sleep, killed with the group, may be a zombie for a moment
	// until whoever inherited it reaps it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(-e.PID, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still there after Stop: %v", e.PID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
