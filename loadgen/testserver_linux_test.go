package loadgen

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a small echo server with the faults the engine must measure or survive: a stall
// of every reply, a corrupting transform, and a sudden death.
type testServer struct {
	ln      net.Listener
	stalled atomic.Bool
	corrupt func(b []byte, off int) // if set, changes echoed bytes; off is the connection's stream offset

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startTestServer(t *testing.T) *testServer {
	t.Helper()
	return startCorruptingServer(t, nil)
}

func startCorruptingServer(t *testing.T, corrupt func(b []byte, off int)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, conns: map[net.Conn]bool{}, corrupt: corrupt}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.kill)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil { // killed
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.echo(c)
	}
}

func (s *testServer) echo(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	buf := make([]byte, 64<<10)
	off := 0
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		for s.stalled.Load() {
			time.Sleep(time.Millisecond)
		}
		if s.corrupt != nil {
			s.corrupt(buf[:n], off)
		}
		off += n
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// kill closes the listener and every connection at once, like a server process dying, and waits
// for the server's goroutines.
func (s *testServer) kill() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// resetAll resets every connection (SO_LINGER 0, then close) while the listener stays open, like a
// server that gives up on its clients instead of answering them.
func (s *testServer) resetAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		delete(s.conns, c)
	}
}

// countFDs is the number of open descriptors of this process.
func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(entries)
}

// runChecked runs the engine and checks that it left no descriptor behind.
func runChecked(t *testing.T, ctx context.Context, cfg Config) (*Result, error) {
	t.Helper()
	return runCheckedThen(t, ctx, cfg, nil)
}

// runCheckedThen is runChecked with afterRun, if set, called as soon as Run returns and before the
// descriptors are counted: a stalled test server must be let go before its side can close.
func runCheckedThen(t *testing.T, ctx context.Context, cfg Config, afterRun func()) (*Result, error) {
	t.Helper()
	before := countFDs(t)
	res, err := Run(ctx, cfg)
	if afterRun != nil {
		afterRun()
	}
	// The test server's side of each connection lives in this process too and closes when its
	// goroutine sees the client's FIN, a moment after Run returns; the engine's own descriptors
	// are closed before. So a count that settles back is no leak, one that stays up is.
	deadline := time.Now().Add(5 * time.Second)
	for countFDs(t) > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := countFDs(t); after > before {
		t.Errorf("Run leaked %d descriptors", after-before)
	}
	if res == nil {
		t.Fatalf("Run returned no result (err %v)", err)
	}
	return res, err
}
