package process

import (
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"echobench/models/modeltest"
	"echobench/server"
)

// startPool starts a prefork server with the given pool, for the tests that look inside it.
func startPool(t *testing.T, pool int) *prefork {
	t.Helper()
	srv := modeltest.Start(t, "process", server.Config{Pool: pool, OutboundLimit: modeltest.TestOutboundLimit})
	return srv.(*prefork)
}

// holdEchoing dials n clients and has each echo once, which proves a worker has taken it.
func holdEchoing(t *testing.T, addr string, n int) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatalf("dial client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if err := modeltest.Echo(c, i, 0, 1000); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
	}
	return conns
}

// TestPoolLimit checks that a pool of 4 serves 4 connections at once: a fifth waits in the
// backlog unserved until one of the four closes, and is served then.
func TestPoolLimit(t *testing.T) {
	const pool = 4
	srv := startPool(t, pool)
	addr := srv.Addr().String()
	held := holdEchoing(t, addr, pool)

	extra, err := modeltest.Dial(addr) // the kernel completes the handshake; no worker accepts it
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	msg := make([]byte, 100)
	modeltest.Pattern(msg, 99, 0)
	if _, err := extra.Write(msg); err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := extra.Read(make([]byte, 100)); err == nil || !isTimeout(err) {
		t.Fatalf("a fifth client on a pool of %d was answered (%d bytes, %v): want it held in the backlog", pool, n, err)
	}
	// The held clients are still served meanwhile.
	for i, c := range held {
		if err := modeltest.Echo(c, i, 1000, 1000); err != nil {
			t.Fatalf("held client %d while the fifth waits: %v", i, err)
		}
	}

	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := modeltest.ReadVerify(extra, 99, 0, len(msg)); err != nil {
		t.Fatalf("the fifth client after one of the four closed: %v", err)
	}
}

// TestWorkerKilled SIGKILLs a worker mid-run: the clients of the other workers keep echoing, the
// parent replaces the dead worker, and the replacement serves new clients.
func TestWorkerKilled(t *testing.T) {
	const pool = 4
	srv := startPool(t, pool)
	addr := srv.Addr().String()
	held := holdEchoing(t, addr, pool)
	before := srv.workerPIDs()
	if len(before) != pool {
		t.Fatalf("%d workers running, want %d", len(before), pool)
	}
	victim := before[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", victim, err)
	}

	// Exactly one client loses its connection: the one the victim served.
	lost := 0
	for i, c := range held {
		if err := modeltest.Echo(c, i, 1000, 10000); err != nil {
			t.Logf("client %d lost with its worker: %v", i, err)
			lost++
		}
	}
	if lost != 1 {
		t.Fatalf("%d clients lost their connection after one worker was killed, want exactly 1", lost)
	}

	var after []int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if after = srv.workerPIDs(); len(after) == pool && !slices.Contains(after, victim) {
			break
		}
	}
	if len(after) != pool || slices.Contains(after, victim) {
		t.Fatalf("workers after killing %d: %v, want %d live workers without it", victim, after, pool)
	}
	// The replacement is the only idle worker, so a new client is served by it.
	c, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := modeltest.Echo(c, 77, 0, 10000); err != nil {
		t.Fatalf("new client served by the replacement worker: %v", err)
	}
	// The new client's "opened" report reaches the parent on its own schedule: wait for it.
	var active int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if active = srv.Stats().Active; active == pool {
			return
		}
	}
	t.Errorf("Active = %d after the kill and one new client, want %d", active, pool)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
