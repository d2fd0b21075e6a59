package blocking_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"

	_ "echobench/models/blocking"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "blocking", modeltest.Options{})
}

func TestConformancePool(t *testing.T) {
	modeltest.Run(t, "blocking", modeltest.Options{Config: server.Config{Pool: 256}, Conns: 200})
}

// TestPoolLimit checks what a pool is for: with Pool 4, four clients are served, a fifth waits in
// the backlog without an echo while they stay connected, and is served once one of them leaves.
func TestPoolLimit(t *testing.T) {
	const pool = 4
	srv := modeltest.Start(t, "blocking", server.Config{Pool: pool})
	addr := srv.Addr().String()
	held := make([]*net.TCPConn, pool)
	for i := range held {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held[i] = c
		if err := modeltest.Echo(c, i, 0, 100); err != nil {
			t.Fatalf("held client %d: %v", i, err)
		}
	}

	extra, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	msg := make([]byte, 100)
	modeltest.Pattern(msg, pool, 0)
	if _, err := extra.Write(msg); err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := extra.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("client %d of a pool of %d: read %d bytes, %v; want no echo until a thread is free", pool+1, pool, n, err)
	}
	for i, c := range held {
		if err := modeltest.Echo(c, i, 100, 100); err != nil {
			t.Fatalf("held client %d while client %d waits: %v", i, pool+1, err)
		}
	}

	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := modeltest.ReadVerify(extra, pool, 0, len(msg)); err != nil {
		t.Fatalf("client %d after a pool thread came free: %v", pool+1, err)
	}
}

// TestThreadPerConnection checks that the model pays for a thread per connection for real: with n
// connections open the process has more than n threads, and at least n of them are gone once the
// connections close. The check follows thread ids rather than counts, because the runtime keeps
// idle threads of its own that a connection may take over, and may start new ones meanwhile.
func TestThreadPerConnection(t *testing.T) {
	const n = 50
	srv := modeltest.Start(t, "blocking", server.Config{})
	conns := modeltest.HoldConns(t, srv.Addr().String(), n, 100)
	during := threadIDs(t)
	if len(during) <= n {
		t.Fatalf("%d threads with %d connections open: want one per connection, plus the acceptor", len(during), n)
	}
	for _, c := range conns {
		c.Close()
	}
	gone := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		now := threadIDs(t)
		gone = 0
		for tid := range during {
			if _, alive := now[tid]; !alive {
				gone++
			}
		}
		// TestMain keeps every connection goroutine off the main thread, so each of them ran
		// on a thread of its own that the runtime destroyed when the goroutine exited.
		if gone >= n {
			return
		}
	}
	t.Fatalf("%d connections closed but only %d of the threads alive while they were open have exited, want %d or more", n, gone, n)
}

// TestAcceptEMFILE runs the server out of file descriptors: accept must back off and log once,
// not spin or flood the log, and a client waiting in the backlog must be served once descriptors
// are free again.
func TestAcceptEMFILE(t *testing.T) {
	for _, pool := range []int{0, 4} {
		t.Run(fmt.Sprintf("pool=%d", pool), func(t *testing.T) { testAcceptEMFILE(t, pool) })
	}
}

func testAcceptEMFILE(t *testing.T, pool int) {
	logs := &modeltest.LogLines{T: t, Contains: "accept4"}
	srv := modeltest.Start(t, "blocking", server.Config{Pool: pool, Logf: logs.Logf})

	// A thread blocked in accept(2) has already reserved the descriptor it will return, so
	// each of them accepts one more connection whatever the limit. Those are the flushers; the
	// client after them is the one that must wait out the shortage.
	acceptors := max(pool, 1)
	modeltest.WaitFor(t, "every accepting thread to block in accept4", func() bool { return threadsInAccept(t) == acceptors })
	flushers := make([]int, acceptors)
	for i := range flushers {
		flushers[i] = modeltest.RawSocket(t)
	}
	waiting := modeltest.RawSocket(t)
	defer unix.Close(waiting)

	restore := modeltest.LowerFDLimit(t, 3)
	// Every flusher is served before any is closed, so that all reservations are spent before
	// the first thread fails: the shortage is then one unbroken burst.
	for i, fd := range flushers {
		modeltest.RawConnect(t, fd, srv.Addr())
		modeltest.RawEcho(t, fd, fmt.Sprintf("flusher %d", i))
	}
	for _, fd := range flushers {
		unix.Close(fd)
	}
	modeltest.RawConnect(t, waiting, srv.Addr())
	if _, err := unix.Write(waiting, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	modeltest.WaitFor(t, "a logged accept failure", func() bool { return logs.Count() > 0 })
	// Several backoff periods pass: the failure repeats in each, but one burst is logged once.
	time.Sleep(500 * time.Millisecond)
	if n := logs.Count(); n != 1 {
		t.Errorf("accept failure logged %d times during one EMFILE burst, want once", n)
	}
	restore()
	modeltest.RawExpect(t, waiting, "ping", "client that waited out EMFILE")
}

// threadsInAccept counts this process's threads blocked in accept4(2), from /proc/self/task.
func threadsInAccept(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("cannot list threads: %v", err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), fmt.Sprint(unix.SYS_ACCEPT4)+" ") {
			n++
		}
	}
	return n
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// threadIDs returns the ids of this process's threads, from /proc/self/task.
func threadIDs(t *testing.T) map[string]struct{} {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("cannot list threads: %v", err)
	}
	ids := make(map[string]struct{}, len(ents))
	for _, e := range ents {
		ids[e.Name()] = struct{}{}
	}
	return ids
}
