package modeltest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"echobench/server"
)

func testEcho(t *testing.T, addr string) {
	for _, size := range []int{1, 2, 7, 100, 1500, 4096, 65535, 65536, 65537, 1 << 20, 4 << 20} {
		c, err := Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		// A second message on the same connection checks that the server keeps its place.
		if err := Echo(c, size, 0, size); err != nil {
			t.Errorf("echo %d bytes: %v", size, err)
		} else if err := Echo(c, size, size, size); err != nil {
			t.Errorf("echo %d more bytes: %v", size, err)
		}
		c.Close()
	}
}

// testConcurrent runs many connections at once, each writing several chunks of varied sizes
// before reading any back, so that segments from different clients interleave at the server.
func testConcurrent(t *testing.T, addr string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for id := 0; id < n; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			off := 0
			for round := 0; round < 5; round++ {
				sizes := []int{1 + (id*7+round)%300, 1000 + (id*131+round*17)%9000, 1 + round}
				total := 0
				for _, s := range sizes {
					b := make([]byte, s)
					Pattern(b, id, off+total)
					if _, err := c.Write(b); err != nil {
						errs <- fmt.Errorf("conn %d write: %w", id, err)
						return
					}
					total += s
				}
				if err := ReadVerify(c, id, off, total); err != nil {
					errs <- err
					return
				}
				off += total
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testWriteBeforeRead writes a whole outbound limit's worth before reading anything: the server
// must buffer or flow-control it, never drop or reorder it.
func testWriteBeforeRead(t *testing.T, addr string, limit int) {
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, limit)
	Pattern(b, 42, 0)
	if _, err := c.Write(b); err != nil {
		t.Fatalf("writing %d bytes before reading: %v", limit, err)
	}
	if err := ReadVerify(c, 42, 0, limit); err != nil {
		t.Fatal(err)
	}
}

// testSlowReader has one client push data it never reads until its writes block, then checks
// the outbound bound, the same for every model: the server holds, read and not yet sent back, at
// most the outbound limit for that client (an event loop in its outbound queue, a thread in its one
// buffer), and another client is still served promptly, so one stalled reader neither holds up
// its loop nor grows without bound. The check runs with no other traffic on the server, so the
// server's BytesIn - BytesOut is what it holds for the stalled client.
func testSlowReader(t *testing.T, srv server.Server, limit int) {
	addr := srv.Addr().String()
	slow, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	chunk := make([]byte, 64<<10)
	pushed := 0
	for pushed < 64<<20 {
		slow.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := slow.Write(chunk)
		pushed += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // the server stopped reading us: backpressure reached the client
			}
			t.Fatalf("slow client write after %d bytes: %v", pushed, err)
		}
	}
	if pushed >= 64<<20 {
		t.Fatalf("server absorbed %d MiB from a client that never reads: no backpressure", pushed>>20)
	}
	held := heldBytes(srv)
	t.Logf("a client that never reads could push %d KiB before its writes blocked; the server holds %d KiB of it (limit %d KiB)", pushed>>10, held>>10, limit>>10)
	if held > int64(limit) {
		t.Errorf("the server holds %d bytes read from a client that never reads, more than the outbound limit of %d", held, limit)
	}
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < 10; i++ {
		if err := Echo(c, 7, i*1000, 1000); err != nil {
			t.Fatalf("second client while the first never reads: %v", err)
		}
	}
}

// heldBytes is what the server has read and not yet sent back, once it has stopped changing: a
// server whose client has just stalled may still be reading the last bytes the kernel holds.
func heldBytes(srv server.Server) int64 {
	held := func() int64 {
		st := srv.Stats()
		return int64(st.BytesIn) - int64(st.BytesOut)
	}
	last := held()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		now := held()
		if now == last {
			break
		}
		last = now
	}
	return last
}

// testHalfClose shuts down the client's sending side: the server must send back everything it
// received, then close its side, so the client reads all its bytes followed by EOF.
func testHalfClose(t *testing.T, addr string) {
	for _, size := range []int{0, 1, 100 << 10} {
		c, err := Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		Pattern(b, 9, 0)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("after half-close with %d bytes sent: read %d bytes, then %v (want EOF)", size, len(got), err)
		}
		if len(got) != size {
			t.Fatalf("after half-close: got %d bytes back, sent %d", len(got), size)
		}
		if err := Verify(got, 9, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// testHalfCloseQueued half-closes while the server still holds echoes it could not send: the
// client writes more than every buffer on the path holds before it reads anything, then shuts
// down its side. A model that acts on the FIN at once, instead of after its queue has drained,
// truncates the echo.
func testHalfCloseQueued(t *testing.T, addr string) {
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 32 << 20
	var sent atomic.Int64
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for sent.Load() < size {
			off := int(sent.Load())
			Pattern(buf, 3, off)
			n, err := c.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				werr <- fmt.Errorf("write at %d: %w", off, err)
				return
			}
		}
		werr <- c.CloseWrite()
	}()
	// Read nothing until the writer has stalled (every buffer full) or finished: either way the
	// server then holds echoes it cannot send yet.
	for last := int64(-1); ; {
		time.Sleep(200 * time.Millisecond)
		now := sent.Load()
		if now == last || now >= size {
			break
		}
		last = now
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	got, err := io.Copy(&verifier{id: 3}, c)
	if err != nil {
		t.Fatalf("read after %d of %d bytes: %v", got, size, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if got != size {
		t.Fatalf("got %d bytes back, then EOF; sent %d", got, size)
	}
}

// verifier is an io.Writer that checks what is written to it against client id's pattern.
type verifier struct {
	id, off int
}

func (v *verifier) Write(b []byte) (int, error) {
	if err := Verify(b, v.id, v.off); err != nil {
		return 0, err
	}
	v.off += len(b)
	return len(b), nil
}

// testReset has clients abort with RST in the middle of transfers while another client echoes:
// the server must survive, keep serving, and drop the aborted connections.
func testReset(t *testing.T, addr string) {
	steady, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer steady.Close()
	stop := make(chan struct{})
	steadyErr := make(chan error, 1)
	go func() {
		off := 0
		for {
			select {
			case <-stop:
				steadyErr <- nil
				return
			default:
			}
			if err := Echo(steady, 5, off, 4096); err != nil {
				steadyErr <- err
				return
			}
			off += 4096
		}
	}()
	for round := 0; round < 3; round++ {
		var aborted []*net.TCPConn
		for i := 0; i < 20; i++ {
			c, err := Dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			big := make([]byte, 256<<10)
			Pattern(big, i, 0)
			c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			c.Write(big) // may block part-way: the server is echoing into a client that never reads
			aborted = append(aborted, c)
		}
		for _, c := range aborted {
			c.SetLinger(0) // close sends RST instead of FIN
			c.Close()
		}
	}
	close(stop)
	if err := <-steadyErr; err != nil {
		t.Fatalf("a client was disturbed by other clients' resets: %v", err)
	}
	c, err := Dial(addr)
	if err != nil {
		t.Fatalf("dial after resets: %v", err)
	}
	defer c.Close()
	if err := Echo(c, 11, 0, 100<<10); err != nil {
		t.Fatalf("echo after resets: %v", err)
	}
}

// testStats checks the server's own counters against traffic whose size the test knows.
func testStats(t *testing.T, m server.Model, cfg server.Config) {
	srv := Start(t, m.Name, cfg)
	const conns, size = 10, 10 << 10
	for i := 0; i < conns; i++ {
		c, err := Dial(srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := Echo(c, i, 0, size); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	want := server.Stats{Accepted: conns, BytesIn: conns * size, BytesOut: conns * size}
	var got server.Stats
	// Closing is asynchronous on the server's side: wait for it to see every close.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = srv.Stats(); got == want {
			return
		}
	}
	t.Fatalf("server counted %+v, want %+v", got, want)
}

// testClose opens idle and busy connections, closes the server, and checks that Close returns,
// every client sees its connection end, new connections are refused, and no goroutine or file
// descriptor is left behind.
func testClose(t *testing.T, m server.Model, cfg server.Config) {
	// Warm up the test process's own netpoller so its fds are in the baseline.
	if c, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()

	srv, err := m.Launch(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	addr := srv.Addr().String()
	var clients []*net.TCPConn
	for i := 0; i < 20; i++ {
		c, err := Dial(addr)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		clients = append(clients, c)
		if err := Echo(c, i, 0, 100); err != nil {
			srv.Close()
			t.Fatal(err)
		}
	}
	// Half the clients are mid-transfer when Close comes: they have written and not read.
	for i, c := range clients[:10] {
		b := make([]byte, 32<<10)
		Pattern(b, i, 100)
		c.Write(b)
	}

	closeChecked(t, srv)

	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !isConnReset(err) {
			t.Errorf("client %d after server Close: %v (want EOF or reset)", i, err)
		}
		c.Close()
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dial after Close succeeded: the listener is still open")
	}
	nothingLeft(t, fdsBefore, goroutinesBefore)
}

// closeChecked closes srv and checks what Close promises: it returns within 20 s without error,
// Wait then reports a clean stop, and a second Close is harmless.
func closeChecked(t *testing.T, srv server.Server) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20s")
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("Wait after Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// nothingLeft waits up to 10 s for the test process's fds and goroutines to fall back to the
// counts taken before a server started, and fails the test with what is left if they do not.
func nothingLeft(t *testing.T, fdsBefore, goroutinesBefore int) {
	t.Helper()
	var fdsAfter, goroutinesAfter int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fdsAfter, goroutinesAfter = countFDs(t), runtime.NumGoroutine()
		if fdsAfter <= fdsBefore && goroutinesAfter <= goroutinesBefore {
			return
		}
	}
	if fdsAfter > fdsBefore {
		t.Errorf("file descriptors: %d before Start, %d after Close: %d leaked", fdsBefore, fdsAfter, fdsAfter-fdsBefore)
	}
	if goroutinesAfter > goroutinesBefore {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before Start, %d after Close\n%s", goroutinesBefore, goroutinesAfter, buf[:runtime.Stack(buf, true)])
	}
}
