package epoll_test

// Tests that watch the server from outside: its memory (VmRSS) and CPU time, and what it does
// when its fd table is full. The server runs in a child process, this test binary re-executed,
// so that the client's memory and fds do not blur the figures and the child's RLIMIT_NOFILE can
// be lowered without touching the test's own.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"echobench/models/epoll"
	"echobench/models/modeltest"
	"echobench/server"
)

// The child's environment: childEnv makes the binary a server; the others configure it.
const (
	childEnv         = "EPOLL_TEST_CHILD"
	childLoopsEnv    = "EPOLL_TEST_LOOPS"
	childOutboundEnv = "EPOLL_TEST_OUTBOUND"
	childHeadroomEnv = "EPOLL_TEST_FD_HEADROOM" // fds left free under RLIMIT_NOFILE after Start
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild serves until its stdin closes (the parent is done, or died), then closes the server.
func runChild() int {
	cfg := server.Config{
		Addr: "127.0.0.1:0",
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	cfg.Loops, _ = strconv.Atoi(os.Getenv(childLoopsEnv))
	cfg.OutboundLimit, _ = strconv.Atoi(os.Getenv(childOutboundEnv))
	srv, err := epoll.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if headroom, _ := strconv.Atoi(os.Getenv(childHeadroomEnv)); headroom > 0 {
		open, err := modeltest.CountFDs()
		if err == nil {
			// Counting /proc/self/fd opens one more fd, closed again by now.
			lim := syscall.Rlimit{Cur: uint64(open - 1 + headroom), Max: uint64(open - 1 + headroom)}
			err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "lowering RLIMIT_NOFILE:", err)
			return 1
		}
	}
	fmt.Println(srv.Addr())
	io.Copy(io.Discard, os.Stdin)
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// child is a server running in a child process.
type child struct {
	addr   string
	pid    int
	stdin  io.Closer
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=1"}, env...)...)
	c := &child{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.stdin, c.pid = stdin, cmd.Process.Pid
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // the test failed before stop
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child server did not print its address: %v; stderr:\n%s", err, c.stderr)
	}
	c.addr = strings.TrimSpace(line)
	return c
}

// stop closes the child's stdin, which makes it close its server and exit, and checks that it
// exited cleanly.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("child server: %v; stderr:\n%s", err, c.stderr)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		t.Errorf("child server did not exit within 30s of being told to; stderr:\n%s", c.stderr)
	}
}

// waitForLog reports whether the child's stderr contains text within timeout.
func (c *child) waitForLog(text string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(c.stderr.String(), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// procStatusKiB reads a "Field:  N kB" line from /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("%s line %q: %v", field, line, err)
			}
			return kib
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// cpuTime returns the user plus system CPU time the process has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15 of the
	// whole line, counted in USER_HZ, which Linux fixes at 100 per second for /proc.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// TestNeverReadingClientHoldsServerMemory has one client write 64 MiB and never read while a
// second client keeps echoing, and watches the server's resident memory meanwhile.
func TestNeverReadingClientHoldsServerMemory(t *testing.T) {
	const limit = server.DefaultOutboundLimit
	srv := startChild(t, fmt.Sprintf("%s=%d", childOutboundEnv, limit))
	defer srv.stop(t)

	steady, err := modeltest.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer steady.Close()
	// One echo first, so that what a served connection costs anyway is in the baseline.
	if err := modeltest.Echo(steady, 1, 0, 64<<10); err != nil {
		t.Fatal(err)
	}
	before := procStatusKiB(t, srv.pid, "VmRSS")

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
			rss := procStatusKiB(t, srv.pid, "VmRSS")
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
	slow, err := dialer.Dial("tcp", srv.addr)
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
	rss := procStatusKiB(t, srv.pid, "VmRSS")
	finish()
	peak = max(peak, rss)

	// The bound: the stalled connection's outbound, at most limit bytes held in 16 KiB chunks
	// (which round it up by less than a chunk), plus 2 MiB of slack for what any Go process
	// adds over a few seconds of new traffic: heap and GC metadata for the chunks, the
	// slice that queues them, goroutine and thread stacks, runtime pages touched for the first
	// time. We measure about 0.7 MiB of it. Under the race detector every heap byte the server
	// writes also gets shadow memory, so the bound scales by raceMemoryFactor. Without
	// backpressure the growth would be tens of MiB: whatever of the 64 MiB the kernel's socket
	// buffers did not hold.
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
	srv := startChild(t, childLoopsEnv+"=2", fmt.Sprintf("%s=%d", childHeadroomEnv, headroom))
	defer srv.stop(t)

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
		c, err := modeltest.Dial(srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, c)
		if err := modeltest.Echo(c, i, 0, 100); err != nil {
			t.Fatalf("connection %d, within the fd limit: %v", i, err)
		}
	}
	for i := range headroom - 3 {
		c, err := modeltest.Dial(srv.addr) // the kernel completes the handshake; accept is separate
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
	if !srv.waitForLog("too many open files", 20*time.Second) {
		t.Fatalf("accept never reported EMFILE; stderr:\n%s", srv.stderr)
	}

	// Not spinning: with the listener still readable and accept failing, a loop that retried
	// at once would burn a core. Two seconds of a spinning loop cost on the order of a second
	// of CPU even on a busy machine; a paused one costs a few milliseconds.
	const window, allowed = 2 * time.Second, 200 * time.Millisecond
	cpu0 := cpuTime(t, srv.pid)
	time.Sleep(window)
	if used := cpuTime(t, srv.pid) - cpu0; used > allowed {
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
			t.Fatalf("waiting client %d after fds came free: %v; stderr:\n%s", i, err, srv.stderr)
		}
	}
	// The child logs before it serves, but its stderr reaches us through a copying goroutine.
	if !srv.waitForLog("accepting again", 10*time.Second) {
		t.Errorf("the server did not log that it accepts again; stderr:\n%s", srv.stderr)
	}
	if err := modeltest.Echo(served[0], 0, 200, 100); err != nil {
		t.Fatalf("a served connection after accept resumed: %v", err)
	}
}
