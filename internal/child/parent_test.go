package child

import (
	"net"
	"os"
	"testing"
	"time"

	"echobench/internal/reexec"
	_ "echobench/models/all"
)

// TestMain lets the test binary serve as the echoserver child: with no echoserver next to it,
// FindBinary picks the running executable, which Start re-executes in RoleServer. The process
// model's children are this binary too, in their own role.
func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

func TestStartStatsStop(t *testing.T) {
	s, err := Start(Options{Model: "stdnet"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(time.Second)
	if !s.SelfExec {
		t.Errorf("binary %s: want the test binary re-executed", s.Binary)
	}
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := conn.Read(buf); err != nil {
		t.Fatal(err)
	}
	st, err := s.RequestStats(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesIn != uint64(len(msg)) || st.Accepted != 1 {
		t.Errorf("stats = %+v, want 1 accepted and %d bytes in", st, len(msg))
	}
	conn.Close()
	exit := s.Stop(5 * time.Second)
	if exit.Code != 0 || exit.Killed {
		t.Errorf("exit = %+v, want a clean exit on SIGTERM", exit)
	}
	if exit.Stats == nil || exit.Stats.BytesOut != uint64(len(msg)) {
		t.Errorf("final stats = %+v, want %d bytes out", exit.Stats, len(msg))
	}
	if exit.Usage.CPU() <= 0 {
		t.Errorf("wait4 usage = %+v, want some CPU", exit.Usage)
	}
	// A second Stop is harmless: it signals nothing and returns the first one's Exit.
	if again := s.Stop(time.Second); again.Status != exit.Status || again.Usage != exit.Usage {
		t.Errorf("second Stop = %+v, want the first one's %+v", again, exit)
	}
}

func TestStartFailure(t *testing.T) {
	_, err := Start(Options{Model: "no-such-model"})
	if err == nil {
		t.Fatal("Start of an unknown model succeeded")
	}
	t.Log(err)
}

func TestPinnedStart(t *testing.T) {
	s, err := Start(Options{Model: "stdnet", CPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(time.Second)
	if s.PinnedThreads != s.Threads || s.Threads == 0 {
		t.Fatalf("%d of %d threads on CPU 0", s.PinnedThreads, s.Threads)
	}
}
