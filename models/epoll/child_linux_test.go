package epoll_test

// Tests that watch the server from outside: its memory (VmRSS) and CPU time, and what it does
// when its fd table is full. The server runs in a child process, this test binary re-executed,
// so that the client's memory and fds do not blur the figures and the child's RLIMIT_NOFILE can
// be lowered without touching the test's own.

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"echobench/internal/reexec"
	_ "echobench/models/epoll"
	"echobench/models/modeltest"
	"echobench/server"
)

func TestMain(m *testing.M) {
	reexec.Run()
	os.Exit(m.Run())
}

// TestNeverReadingClientHoldsServerMemory has one client write 64 MiB and never read while a
// second client keeps echoing, and watches the server's resident memory meanwhile.
func TestNeverReadingClientHoldsServerMemory(t *testing.T) {
	const limit = server.DefaultOutboundLimit
	srv := modeltest.StartChild(t, modeltest.ChildOptions{Model: "epoll", Config: server.Config{OutboundLimit: limit}})
	defer srv.Stop(t)

	steady, err := modeltest.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer steady.Close()
	// One echo first, so that what a served connection costs anyway is in the baseline.
	if err := modeltest.Echo(steady, 1, 0, 64<<10); err != nil {
		t.Fatal(err)
	}
	before := srv.RSSKiB(t)

	// The steady client echoes all along; the peak RSS is sampled all along too.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	echoed, peak := 0, before
	var steadyErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for off := 64 << 10; ; off += 1000 {
			select {
			case <-stop:
				return
			default:
			}
			err := modeltest.Echo(steady, 1, off, 1000)
			mu.Lock()
			if err != nil {
				steadyErr = err
			} else {
				echoed++
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rss := srv.RSSKiB(t)
			mu.Lock()
			peak = max(peak, rss)
			mu.Unlock()
		}
	}()
	finish := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer finish()

	// A small receive buffer on the reader that never reads makes the server's echoes back up
	// at once rather than after the kernel has absorbed megabytes of them.
	dialer := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
		return serr
	}}
	slow, err := dialer.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	chunk := make([]byte, 64<<10) // one buffer, reused, so the client adds nothing to measure
	pushed := 0
	for pushed < 64<<20 {
		slow.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := slow.Write(chunk)
		pushed += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // backpressure has reached the client
			}
			t.Fatalf("slow client write after %d bytes: %v", pushed, err)
		}
	}
	if pushed >= 64<<20 {
		t.Fatalf("the server absorbed all 64 MiB from a client that never reads: no backpressure")
	}

	// While the slow client stays stalled, the steady one must still be served.
	mu.Lock()
	echoedAtStall := echoed
	mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		progress, err := echoed-echoedAtStall, steadyErr
		mu.Unlock()
		if err != nil {
			t.Fatalf("the steady client failed while another never read: %v", err)
		}
		if progress >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the steady client got %d echoes in 30s while another client never read", progress)
		}
	}
	rss := srv.RSSKiB(t)
	finish()
	peak = max(peak, rss)

	// The bound: the stalled connection's outbound, at most limit bytes held in chunks (which round
	// it up by less than two chunks), plus 2 MiB of slack for what any Go process adds over a few
	// seconds of new traffic: heap and GC metadata for the chunks, the slice that queues them,
	// goroutine and thread stacks, runtime pages touched for the first time. Under the race
	// detector every heap byte the server writes also gets shadow memory, so the bound scales by
	// raceMemoryFactor. Without backpressure the growth would be tens of MiB: whatever of
	// the 64 MiB the kernel's socket buffers did not hold.
	const slack = 2 << 20
	bound := (limit + slack) * raceMemoryFactor
	growth := (peak - before) << 10
	t.Logf("a client that never reads pushed %d MiB before blocking; server VmRSS %d KiB before, %d KiB peak: growth %.1f MiB (bound %d MiB)",
		pushed>>20, before, peak, float64(growth)/(1<<20), bound>>20)
	if growth > bound {
		t.Errorf("server RSS grew %.1f MiB while a client never read; the outbound bound is %d MiB, allowed growth %d MiB",
			float64(growth)/(1<<20), limit>>20, bound>>20)
	}
}

// TestAcceptSurvivesEMFILE fills the server's fd table, so accept fails with EMFILE, and
// checks that the server neither dies nor spins, keeps serving the connections it has, and
// accepts the waiting clients once fds come free.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	const headroom = 8 // fds the child may still open after Start
	srv := modeltest.StartChild(t, modeltest.ChildOptions{Model: "epoll", Config: server.Config{Loops: 2}, FDSlots: headroom})
	defer srv.Stop(t)

	// Fill all but two of the free fds with served connections, then queue more clients than
	// the rest can take: three wait in the listen backlog while accept fails. Closing all but
	// one served connection later frees headroom-3 fds, two more than those three need, so
	// every waiting client must be accepted. (Queueing 8 here once left the last client one fd
	// short whenever the child's fd table had no hole below the limit: RLIMIT_NOFILE bounds fd
	// numbers, not counts.)
	var served, waiting []*net.TCPConn
	defer func() {
		for _, c := range append(served, waiting...) {
			c.Close()
		}
	}()
	for i := range headroom - 2 {
		c, err := modeltest.Dial(srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, c)
		if err := modeltest.Echo(c, i, 0, 100); err != nil {
			t.Fatalf("connection %d, within the fd limit: %v", i, err)
		}
	}
	for i := range headroom - 3 {
		c, err := modeltest.Dial(srv.Addr) // the kernel completes the handshake; accept is separate
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, c)
		b := make([]byte, 100)
		modeltest.Pattern(b, 100+i, 0)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if !srv.WaitForLog("too many open files", 20*time.Second) {
		t.Fatalf("accept never reported EMFILE; stderr:\n%s", srv.Stderr())
	}

	// Not spinning: with the listener still readable and accept failing, a loop that retried
	// at once would burn a core. Two seconds of a spinning loop cost on the order of a second
	// of CPU even on a busy machine; a paused one costs a few milliseconds.
	const window, allowed = 2 * time.Second, 200 * time.Millisecond
	cpu0 := srv.CPUTime(t)
	time.Sleep(window)
	if used := srv.CPUTime(t) - cpu0; used > allowed {
		t.Errorf("the server used %v of CPU in %v while accept failed with EMFILE: it spins", used, window)
	}
	// Not dead: the connections it has are still served.
	if err := modeltest.Echo(served[0], 0, 100, 100); err != nil {
		t.Fatalf("a served connection while accept fails: %v", err)
	}

	// Free fds: the server sees these clients leave and closes its ends. Every waiting client
	// must then be accepted and get its bytes back.
	for _, c := range served[1:] {
		c.Close()
	}
	served = served[:1]
	for i, c := range waiting {
		if err := modeltest.ReadVerify(c, 100+i, 0, 100); err != nil {
			t.Fatalf("waiting client %d after fds came free: %v; stderr:\n%s", i, err, srv.Stderr())
		}
	}
	// The child logs before it serves, but its stderr reaches us through a copying goroutine.
	if !srv.WaitForLog("accepting again", 10*time.Second) {
		t.Errorf("the server did not log that it accepts again; stderr:\n%s", srv.Stderr())
	}
	if err := modeltest.Echo(served[0], 0, 200, 100); err != nil {
		t.Fatalf("a served connection after accept resumed: %v", err)
	}
}
