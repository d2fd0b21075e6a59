package epoll_test

import (
	"io"
	"runtime"
	"syscall"
	"testing"

	_ "echobench/models/epoll"
	"echobench/models/modeltest"
	"echobench/server"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "epoll", modeltest.Options{})
}

// The SO_REUSEPORT variant differs only in how connections reach the loops, so the same suite
// covers it.
func TestConformanceReusePort(t *testing.T) {
	modeltest.Run(t, "epoll", modeltest.Options{Config: server.Config{ReusePort: true}})
}

// TestHolds5000Connections keeps 5,000 connections open at once and echoes verified bytes on
// every one of them.
func TestHolds5000Connections(t *testing.T) {
	const n = 5000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < 2*n+100 {
		t.Skipf("RLIMIT_NOFILE is %d; holding %d connections in one process takes %d fds (ulimit -n)", lim.Cur, n, 2*n+100)
	}
	srv := modeltest.Start(t, "epoll", server.Config{Logf: func(string, ...any) {}})
	modeltest.HoldConns(t, srv.Addr().String(), n, 4096)
	if got := srv.Stats(); got.Active != n || got.Accepted != n {
		t.Errorf("server counts %d accepted, %d active; want %d of each", got.Accepted, got.Active, n)
	}
}

// TestEchoDoesNotAllocate checks the hot path: once warm, echoing small messages allocates
// nothing on the server. The client side (net.TCPConn Write and Read into reused buffers)
// allocates nothing either, so the process's malloc count is the server's.
func TestEchoDoesNotAllocate(t *testing.T) {
	srv := modeltest.Start(t, "epoll", server.Config{Loops: 1})
	c, err := modeltest.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, got := make([]byte, 512), make([]byte, 512)
	roundTrip := func(i int) {
		modeltest.Pattern(msg, 3, i*len(msg))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		roundTrip(i)
	}
	const rounds = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range rounds {
		roundTrip(200 + i)
	}
	runtime.ReadMemStats(&after)
	if err := modeltest.Verify(got, 3, (200+rounds-1)*len(msg)); err != nil {
		t.Fatal(err)
	}
	// A handful of allocations can come from the runtime itself (a timer, the test framework);
	// one per message would be rounds of them.
	if allocs := after.Mallocs - before.Mallocs; allocs > rounds/50 {
		t.Errorf("%d allocations in the process over %d echoed messages: the hot path allocates", allocs, rounds)
	}
}

// TestServesWithOneP runs a loop with GOMAXPROCS 1, as a server pinned to one CPU does. The
// loop keeps its P while it waits, so everything else in the process, here the client itself,
// Stats and a garbage collection, runs only when the loop gives the P up or is preempted; each
// must still get its turn, and Close must still stop the loop.
func TestServesWithOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	srv := modeltest.Start(t, "epoll", server.Config{Loops: 1})
	c, err := modeltest.Dial(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const rounds = 50
	msg, got := make([]byte, 64), make([]byte, 64)
	for i := range rounds {
		modeltest.Pattern(msg, 5, i*len(msg))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if err := modeltest.Verify(got, 5, i*len(msg)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			runtime.GC()
		}
	}
	if st := srv.Stats(); st.BytesIn != rounds*64 {
		t.Errorf("server counts %d bytes in; want %d", st.BytesIn, rounds*64)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
