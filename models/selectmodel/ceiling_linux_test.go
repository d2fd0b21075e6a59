package selectmodel_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"
)

const ceilingMessage = "select(2) cannot watch fd 1024 or above; use -model epoll"

// logRecorder is a Config.Logf that keeps every line.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *logRecorder) matching(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// waitFor polls cond until it holds, and fails the test if it never does: the server's side of a
// connect or a close happens asynchronously to the client's.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func needFDs(t *testing.T, n uint64) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if rl.Cur < n {
		t.Skipf("RLIMIT_NOFILE is %d; this test needs %d", rl.Cur, n)
	}
}

// TestFDCeiling opens 1,100 connections to one server in this process. Clients and server share
// the process's fd table, so the server's fds pass 1023 after roughly 500 connections; from then
// on every new connection must be closed at once and counted, while the early ones keep echoing.
func TestFDCeiling(t *testing.T) {
	const clients, early = 1100, 100
	needFDs(t, 2*clients+200)
	var log logRecorder
	began := time.Now()
	srv := modeltest.Start(t, "select", server.Config{OutboundLimit: modeltest.TestOutboundLimit, Logf: log.logf})
	addr := srv.Addr().String()

	conns := make([]*net.TCPConn, 0, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < clients; i++ {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatalf("dial %d of %d: %v", i, clients, err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "the server to accept or reject every connection", func() bool {
		st := srv.Stats()
		return st.Accepted+st.Rejected == clients
	})

	// Every connection is either served (its echo comes back) or was closed by the server (EOF
	// or reset): none hangs, none gets wrong bytes.
	served, closed := 0, 0
	for i, c := range conns {
		err := modeltest.Echo(c, i, 0, 100)
		switch {
		case err == nil:
			served++
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
			closed++
			if i < early {
				t.Errorf("early connection %d was closed: %v", i, err)
			}
		default:
			t.Errorf("connection %d neither echoed nor was closed by the server: %v", i, err)
		}
	}
	st := srv.Stats()
	t.Logf("%d connections: %d served, %d closed by the server; server counted %+v", clients, served, closed, st)
	if closed == 0 {
		t.Fatalf("no connection was rejected: the server's fds never reached %d?", unix.FD_SETSIZE)
	}
	if uint64(closed) != st.Rejected || uint64(served) != st.Accepted {
		t.Errorf("clients saw %d served and %d closed; the server counted %d accepted and %d rejected", served, closed, st.Accepted, st.Rejected)
	}
	lines := log.matching(ceilingMessage)
	if len(lines) == 0 {
		t.Fatalf("no log line says %q", ceilingMessage)
	}
	t.Logf("first of %d ceiling messages: %s", len(lines), lines[0])
	// The message is rate-limited to one per second after the first, plus a final count at Close.
	if limit := 2 + int(time.Since(began)/time.Second); len(lines) > limit {
		t.Errorf("%d rejections logged %d lines; want at most %d (one per second)", closed, len(lines), limit)
	}

	// With the late connections gone, the server serves a new one and still holds the early ones.
	for _, c := range conns[early:] {
		c.Close()
	}
	conns = conns[:early]
	waitFor(t, "the server to see the late connections close", func() bool { return srv.Stats().Active == early })
	c, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatalf("dial after the late connections closed: %v", err)
	}
	conns = append(conns, c)
	if err := modeltest.Echo(c, clients, 0, 64<<10); err != nil {
		t.Fatalf("echo on a new connection after the ceiling: %v", err)
	}
	for i, c := range conns[:early] {
		if err := modeltest.Echo(c, i, 100, 1000); err != nil {
			t.Fatalf("early connection %d after the ceiling: %v", i, err)
		}
	}
}

// TestListenerPastCeiling starts the server when every fd below 1024 is taken: the listening
// socket itself would be past the ceiling, so Start must fail with the message, leaking nothing.
func TestListenerPastCeiling(t *testing.T) {
	needFDs(t, 1200)
	before, err := modeltest.CountFDs()
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	var filler []int
	defer func() {
		for _, fd := range filler {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("filling the fd table: %v", err)
		}
		filler = append(filler, fd)
		if fd >= unix.FD_SETSIZE {
			break // every lower fd is open
		}
	}
	m, err := server.Lookup("select")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Start(server.Config{Addr: "127.0.0.1:0", Logf: t.Logf})
	if err == nil {
		srv.Close()
		t.Fatalf("Start succeeded with every fd below %d taken", unix.FD_SETSIZE)
	}
	if !strings.Contains(err.Error(), ceilingMessage) {
		t.Fatalf("Start: %v; want an error saying %q", err, ceilingMessage)
	}
	t.Logf("Start: %v", err)
	for _, fd := range filler {
		unix.Close(fd)
	}
	filler = nil
	if after, _ := modeltest.CountFDs(); after != before {
		t.Errorf("fds: %d before, %d after a failed Start", before, after)
	}
}
