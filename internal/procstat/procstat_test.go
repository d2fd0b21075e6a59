package procstat

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestParseStatOddCommand(t *testing.T) {
	// A command name may hold spaces and parentheses; fields are counted from the last ')'.
	line := "42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 250 130 30 20 20 0 3 0 100 1000000 5 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	p, err := parseStat(42, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Proc{PID: 42, PPID: 7, State: 'S', UserTicks: 250, SysTicks: 130, CUserTicks: 30, CSysTicks: 20, Threads: 3, RSSBytes: 5 * pageSize}
	if p != want {
		t.Fatalf("parseStat = %+v, want %+v", p, want)
	}
}

func TestSampleSelf(t *testing.T) {
	// Burn some CPU so there is something to count: 30 ms of it by getrusage, which counts in
	// microseconds, so /proc's 10 ms ticks have at least one to show. A fixed stretch of wall
	// time is not enough: on a loaded machine the process may not be scheduled during it (a CI
	// run once saw 0 ticks after 50 ms of wall time).
	burn(t, 30*time.Millisecond)
	tree, hwm, err := SampleTree(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Processes != 1 {
		t.Errorf("processes = %d, want 1 (the test process has no children)", tree.Processes)
	}
	if tree.Threads < 1 || tree.RSSBytes == 0 || hwm < tree.RSSBytes/2 {
		t.Errorf("threads %d, rss %d, hwm %d: want at least one thread and a resident size", tree.Threads, tree.RSSBytes, hwm)
	}
	if tree.CPU() <= 0 {
		t.Errorf("cpu = %v after a busy loop, want > 0", tree.CPU())
	}
	if tree.Voluntary+tree.Involuntary == 0 {
		t.Errorf("no context switches over %d threads", tree.Threads)
	}
	self, err := Self()
	if err != nil || self.CPU() <= 0 {
		t.Errorf("Self() = %+v, %v", self, err)
	}
}

// burn spins until this process has used d more CPU time, or fails the test after 30 s.
func burn(t *testing.T, d time.Duration) {
	t.Helper()
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, deadline := used(), time.Now().Add(30*time.Second)
	for used()-start < d {
		if time.Now().After(deadline) {
			t.Fatalf("could not use %v of CPU in 30 s", d)
		}
		for x := 0; x < 1_000_000; x++ {
		}
	}
}

func startTree(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The shell's children are killed first, through the tree we can list; then the shell.
		if pids, err := Descendants(cmd.Process.Pid); err == nil {
			for _, pid := range pids[1:] {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func TestTreeCountsChildren(t *testing.T) {
	cmd := startTree(t, "sleep 30 & sleep 30 & wait")
	s := NewSampler(cmd.Process.Pid)
	s.Start()
	defer s.Stop()
	// The shell forks its two children right away; wait until the tree shows them.
	var tree Tree
	for range 100 {
		var err error
		if tree, err = s.Sample(false); err == nil && tree.Processes == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tree.Processes != 3 {
		t.Fatalf("tree has %d processes, want 3 (sh and two sleeps)", tree.Processes)
	}
	if tree.Threads < 3 {
		t.Errorf("tree has %d threads, want at least 3", tree.Threads)
	}
	if p := s.Peaks(); p.Processes != 3 || p.Samples == 0 {
		t.Errorf("peaks = %+v, want 3 processes", p)
	}
}

func TestTreeKeepsReapedChildrenCPU(t *testing.T) {
	// The inner shell burns CPU and exits; the outer one reaps it and then becomes sleep. The
	// burnt CPU must stay in the tree through the parent's cutime/cstime (exec keeps them).
	cmd := startTree(t, `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; exec sleep 30`)
	pid := cmd.Process.Pid
	var tree Tree
	for range 500 {
		p, err := ReadProc(pid)
		if err != nil {
			t.Fatal(err)
		}
		kids, _ := Children(pid)
		if p.CUserTicks+p.CSysTicks > 0 && len(kids) == 0 {
			if tree, _, err = SampleTree(pid, false); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tree.Processes != 1 {
		t.Fatalf("the burning child was not reaped in time (tree %+v)", tree)
	}
	own, _ := ReadProc(pid)
	if reaped := ticks(own.CUserTicks + own.CSysTicks); tree.CPU() < reaped || reaped == 0 {
		t.Fatalf("tree CPU %v, reaped children's CPU %v: the exited child's CPU vanished", tree.CPU(), reaped)
	}
}

func TestGoneProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SampleTree(cmd.Process.Pid, false); err == nil {
		t.Fatal("sampling a reaped process succeeded")
	}
}

func TestKeepCumulative(t *testing.T) {
	prev := Tree{User: 3 * time.Second, Sys: 2 * time.Second}
	// A sample that missed a child reaped mid-walk reads less than the one before it.
	dipped := keepCumulative(prev, Tree{User: 2 * time.Second, Sys: 2500 * time.Millisecond, Processes: 4})
	if dipped.User != 3*time.Second || dipped.Sys != 2500*time.Millisecond || dipped.Processes != 4 {
		t.Fatalf("keepCumulative = %+v, want user held at 3s, sys 2.5s and the rest unchanged", dipped)
	}
}
