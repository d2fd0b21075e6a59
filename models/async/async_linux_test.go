//go:build !poll_opt

package async_test

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/reexec"
	_ "echobench/models/async"
	"echobench/models/modeltest"
	"echobench/server"
)

func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	modeltest.Run(t, "async", modeltest.Options{})
}

// TestConformanceReusePort runs the suite with one SO_REUSEPORT listener per loop, every loop
// locked to its own thread, and more loops than cores: with port 0, every loop must still listen
// on the one reported port, and the reserved port's socket must not outlive Start.
func TestConformanceReusePort(t *testing.T) {
	modeltest.Run(t, "async", modeltest.Options{Config: server.Config{Loops: 3, ReusePort: true, LockOSThread: true}})
}

// TestHoldFiveThousand holds 5,000 connections open at once and echoes verified bytes on each.
func TestHoldFiveThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 connections")
	}
	srv := modeltest.Start(t, "async", server.Config{})
	conns := modeltest.HoldConns(t, srv.Addr().String(), 5000, 2000)
	if got := srv.Stats().Active; got != int64(len(conns)) {
		t.Errorf("server counts %d active connections, want %d", got, len(conns))
	}
}

// rssSlack is what the server's resident memory may grow by beyond the outbound limit while a
// client floods it without reading. It is the runtime's and the measurement's, not the flooded
// connection's: the server process is this test binary, built with -race when the tests are, so
// each heap page it touches brings race-detector shadow pages along; the heap may reach the GC's
// 4 MiB minimum goal before a collection, and freed pages go back to the OS only as the background
// scavenger gets to them; the two test connections get gnet's per-connection state and a pooled
// outbound ring of up to 64 KiB; a goroutine or thread the runtime starts meanwhile brings a
// stack. 8 MiB leaves room for all that on a loaded machine and stays far below what a server
// without backpressure grows by in this test, most of the 64 MiB.
const rssSlack = 8 << 20

// TestNeverReaderMemoryBounded runs the server as its own process, has one client write 64 MiB
// without ever reading, and checks that the server's resident memory grows by no more than the
// outbound limit plus rssSlack while a second client keeps getting its echoes.
func TestNeverReaderMemoryBounded(t *testing.T) {
	const limit = modeltest.TestOutboundLimit
	srv := modeltest.StartChild(t, modeltest.ChildOptions{Model: "async", Config: server.Config{OutboundLimit: limit}})
	defer stopChild(t, srv)
	addr := srv.Addr

	// Warm up: one echo large enough to touch every loop buffer and pool once.
	for i := 0; i < 4; i++ {
		c, err := modeltest.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := modeltest.Echo(c, i, 0, 1<<20); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	before := srv.RSSKiB(t) << 10

	slow, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	const flood = 64 << 20
	pushed := 0
	chunk := make([]byte, 64<<10)
	for pushed < flood {
		slow.SetWriteDeadline(time.Now().Add(2 * time.Second))
		n, err := slow.Write(chunk)
		pushed += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // blocked: the server stopped reading us
			}
			t.Fatalf("flooding client write after %d bytes: %v", pushed, err)
		}
	}

	other, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; i < 20; i++ {
		if err := modeltest.Echo(other, 8, i*10000, 10000); err != nil {
			t.Fatalf("second client while the first never reads: %v", err)
		}
	}
	after := srv.RSSKiB(t) << 10
	growth := after - before
	t.Logf("flooding client pushed %d KiB before blocking; server VmRSS %d KiB before, %d KiB after (growth %d KiB; limit %d KiB + slack %d KiB)",
		pushed>>10, before>>10, after>>10, growth>>10, limit>>10, rssSlack>>10)
	if pushed >= flood {
		t.Errorf("the server absorbed all %d MiB from a client that never reads", flood>>20)
	}
	if growth > limit+rssSlack {
		t.Fatalf("server VmRSS grew by %d KiB, more than the outbound limit %d KiB plus %d KiB slack", growth>>10, limit>>10, rssSlack>>10)
	}
}

// TestFdExhaustionSurvives floods a server whose fd limit is low with far more connections than
// it may hold, all at once. gnet stops its whole engine when accept(2) fails with EMFILE; the
// model must shed connections before that happens and keep serving, in the default Config as
// well as with ReusePort set.
func TestFdExhaustionSurvives(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reusePort bool
	}{
		{"default", false},
		{"reuseport", true},
	} {
		t.Run(tc.name, func(t *testing.T) { floodPastNofile(t, tc.reusePort) })
	}
}

func floodPastNofile(t *testing.T, reusePort bool) {
	const nofile, flood = 256, 2000
	srv := modeltest.StartChild(t, modeltest.ChildOptions{
		Model:  "async",
		Config: server.Config{OutboundLimit: modeltest.TestOutboundLimit, ReusePort: reusePort},
		NoFile: nofile,
	})
	defer stopChild(t, srv)
	addr := srv.Addr
	var wg sync.WaitGroup
	conns := make(chan net.Conn, flood)
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Dials may fail when the backlog is full: the flood only has to arrive.
			if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				conns <- c
			}
		}()
	}
	wg.Wait()
	close(conns)
	held := 0
	for c := range conns {
		held++
		c.Close()
	}
	t.Logf("%d of %d flooding dials connected", held, flood)
	c, err := modeltest.Dial(addr)
	if err != nil {
		t.Fatalf("dial after a flood past RLIMIT_NOFILE %d: %v", nofile, err)
	}
	defer c.Close()
	if err := modeltest.Echo(c, 1, 0, 100<<10); err != nil {
		t.Fatalf("echo after a flood past RLIMIT_NOFILE %d: %v", nofile, err)
	}
}

// stopChild stops a child server, which must exit 0, and logs its final counters.
func stopChild(t *testing.T, srv *modeltest.Child) {
	t.Helper()
	if stats, ok := srv.Stop(t); ok {
		t.Logf("server process stats: %+v", stats)
	}
}

// TestFixedPortNotShared starts a second server on the port of a first: both would use
// SO_REUSEPORT, and without the check the kernel would split the clients between them.
func TestFixedPortNotShared(t *testing.T) {
	first := modeltest.Start(t, "async", server.Config{})
	m, err := server.Lookup("async")
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.Start(server.Config{Addr: first.Addr().String(), Logf: t.Logf})
	if err == nil {
		second.Close()
		t.Fatalf("a second server started on %s, which the first holds", first.Addr())
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second server on a taken port: %v, want EADDRINUSE", err)
	}
}
