package modeltest

// A child server is the test binary re-executed as a server process. A test runs a server that
// way when it watches the server from outside: its resident memory and CPU time are then the
// server's alone, not blurred by the test's own clients, and its RLIMIT_NOFILE can be lowered
// without starving the test of fds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/procstat"
	"echobench/server"
)

// childEnv carries a child server's childSpec, JSON-encoded, from StartChild to
// ServeChildIfRequested. With every option in one variable, the child is configured by nothing
// but what StartChild encoded, and a new option needs no new variable.
const childEnv = "ECHOBENCH_MODELTEST_CHILD"

// childStatsPrefix starts the last line a child server prints on stdout, before its counters.
const childStatsPrefix = "stats "

// childStopTimeout bounds how long Stop waits for a child to close its server and exit. The
// conformance suite allows Close 20s; the rest is slack for -race on a loaded two-core machine.
const childStopTimeout = 30 * time.Second

// ChildOptions configure a child server.
type ChildOptions struct {
	// Model is the registered name of the model to serve. The test binary must link the model's
	// package (a blank import will do), so that its init registers it in the child too.
	Model string
	// Config is the server's configuration. Addr defaults to 127.0.0.1:0. Logf must be nil: the
	// child writes each log line to its stderr, which Child.WaitForLog and Child.LogLines read.
	Config server.Config
	// NoFile, if above zero, is the RLIMIT_NOFILE (soft and hard) the child sets before Start.
	NoFile uint64
	// FDSlots, if above zero, makes the child lower RLIMIT_NOFILE after Start so that exactly
	// FDSlots more fds can be opened: the server can then hold that many connections and no more.
	FDSlots int
}

// childSpec is ChildOptions as it travels to the child. server.Config cannot be JSON-encoded
// whole, because Logf is a func, so its other fields are copied one by one.
type childSpec struct {
	Model         string
	Addr          string
	Loops         int
	Pool          int
	OutboundLimit int
	ReusePort     bool
	LockOSThread  bool
	NoFile        uint64
	FDSlots       int
}

func (o ChildOptions) spec() childSpec {
	c := o.Config
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	return childSpec{
		Model:         o.Model,
		Addr:          c.Addr,
		Loops:         c.Loops,
		Pool:          c.Pool,
		OutboundLimit: c.OutboundLimit,
		ReusePort:     c.ReusePort,
		LockOSThread:  c.LockOSThread,
		NoFile:        o.NoFile,
		FDSlots:       o.FDSlots,
	}
}

func (s childSpec) config() server.Config {
	return server.Config{
		Addr:          s.Addr,
		Loops:         s.Loops,
		Pool:          s.Pool,
		OutboundLimit: s.OutboundLimit,
		ReusePort:     s.ReusePort,
		LockOSThread:  s.LockOSThread,
		Logf:          func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
}

// ServeChildIfRequested turns the test binary into a child server when StartChild asked for one,
// and exits; otherwise it returns at once. A test package that starts child servers calls it
// first thing in TestMain.
func ServeChildIfRequested() {
	encoded := os.Getenv(childEnv)
	if encoded == "" {
		return
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(encoded), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s=%s: %v\n", childEnv, encoded, err)
		os.Exit(2)
	}
	if err := serveChild(spec); err != nil {
		fmt.Fprintf(os.Stderr, "child server %s: %v\n", spec.Model, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveChild prints the server's address, serves until stdin closes (the test is done with it, or
// has died), closes the server, and prints its final counters.
func serveChild(spec childSpec) error {
	if spec.NoFile > 0 {
		lim := unix.Rlimit{Cur: spec.NoFile, Max: spec.NoFile}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit RLIMIT_NOFILE %d: %w", spec.NoFile, err)
		}
	}
	m, err := server.Lookup(spec.Model)
	if err != nil {
		return err
	}
	srv, err := m.Start(spec.config())
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if spec.FDSlots > 0 {
		if err := leaveFDSlots(spec.FDSlots); err != nil {
			srv.Close()
			return err
		}
	}
	fmt.Println(srv.Addr())
	io.Copy(io.Discard, os.Stdin)
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	// The counters are read after Close, so that they are final: every connection is closed.
	stats, err := json.Marshal(srv.Stats())
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", childStatsPrefix, stats)
	return nil
}

// leaveFDSlots lowers this process's RLIMIT_NOFILE so that exactly slots more fds can be opened.
func leaveFDSlots(slots int) error {
	open, err := openFDs()
	if err != nil {
		return err
	}
	limit := fdLimitLeaving(open, slots)
	lim := unix.Rlimit{Cur: limit, Max: limit}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit RLIMIT_NOFILE %d to leave %d fds free: %w", limit, slots, err)
	}
	return nil
}

// openFDs returns the set of fds this process has open, leaving out the one it opens to list
// them, which is closed again by the time the caller uses the set.
func openFDs() (map[int]bool, error) {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing /proc/self/fd: %w", err)
	}
	own := int(dir.Fd())
	open := make(map[int]bool, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil {
			return nil, fmt.Errorf("/proc/self/fd entry %q: %w", name, err)
		}
		if fd != own {
			open[fd] = true
		}
	}
	return open, nil
}

// fdLimitLeaving returns the smallest RLIMIT_NOFILE under which exactly slots fd numbers are
// free. The limit bounds fd numbers, not the count of open fds: the kernel hands out the lowest
// free number, and refuses one at or above the limit. So the free numbers below the limit are
// what can still be opened, holes in the fd table included, and an open fd at or above the limit
// takes no slot.
func fdLimitLeaving(open map[int]bool, slots int) uint64 {
	free := 0
	for fd := 0; ; fd++ {
		if open[fd] {
			continue
		}
		free++
		if free == slots {
			return uint64(fd + 1)
		}
	}
}

// Child is a server running in a child process, started by StartChild.
type Child struct {
	// Addr is the server's listening address.
	Addr string
	// Pid is the child's process id, for reading its /proc entries.
	Pid int

	process *os.Process
	stdin   io.Closer
	stdout  *lockedBuffer
	stderr  *lockedBuffer
	stopped atomic.Bool   // Stop was called: the test's cleanup need not kill the child
	exited  chan struct{} // closed once the child has exited and its output is all copied
	waitErr error         // how the child exited; set before exited is closed
}

// StartChild re-executes the test binary as a child server and returns once the server listens.
// The test package's TestMain must call ServeChildIfRequested. A child the test does not Stop is
// killed when the test ends.
func StartChild(t testing.TB, opts ChildOptions) *Child {
	t.Helper()
	m, err := server.Lookup(opts.Model)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckAvailable(); err != nil {
		t.Skip(err)
	}
	if opts.Config.Logf != nil {
		t.Fatal("ChildOptions.Config.Logf must be nil: a child server logs to its stderr; read it with WaitForLog or LogLines")
	}
	spec, err := json.Marshal(opts.spec())
	if err != nil {
		t.Fatal(err)
	}
	// -test.run=^$ makes a child whose TestMain does not serve run no test, rather than run every
	// test a second time; StartChild then fails because what it printed is no address.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	c := &Child{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	// Buffers rather than pipes: exec copies the output in the background, so the test need not
	// drain a pipe before Wait, and Wait can run from the start.
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	// A process the child started could hold its output open after the child exits; this bounds
	// how long Wait then waits for the copy.
	cmd.WaitDelay = 5 * time.Second
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.process, c.Pid = cmd.Process, cmd.Process.Pid
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		if !c.stopped.Load() {
			c.process.Kill()
			<-c.exited
		}
	})

	// The address is the child's first line on stdout.
	for deadline := time.Now().Add(ioTimeout); ; {
		if first, _, found := strings.Cut(c.stdout.String(), "\n"); found {
			if _, _, err := net.SplitHostPort(first); err != nil {
				t.Fatalf("child server %s printed %q, not its address (does TestMain call modeltest.ServeChildIfRequested?); stderr:\n%s",
					opts.Model, first, c.Stderr())
			}
			c.Addr = first
			return c
		}
		select {
		case <-c.exited:
			t.Fatalf("child server %s exited before printing its address: %v; stderr:\n%s", opts.Model, c.waitErr, c.Stderr())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("child server %s printed no address within %v; stderr:\n%s", opts.Model, ioTimeout, c.Stderr())
		}
	}
}

// Stop closes the child's stdin, which makes it close its server, print its final counters and
// exit, and returns those counters. If the child does not exit within 30s (Stop then kills it),
// exits with a status other than 0, or prints no counters, Stop marks the test failed, showing
// the child's stderr, and returns ok false: the test decides whether to go on without them.
func (c *Child) Stop(t testing.TB) (stats server.Stats, ok bool) {
	t.Helper()
	c.stopped.Store(true)
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(childStopTimeout):
		c.process.Kill()
		<-c.exited
		t.Errorf("child server did not exit within %v of being told to; stderr:\n%s", childStopTimeout, c.Stderr())
		return server.Stats{}, false
	}
	if c.waitErr != nil {
		t.Errorf("child server: %v; stderr:\n%s", c.waitErr, c.Stderr())
		return server.Stats{}, false
	}
	// The counters are the last line; anything a model printed to stdout comes before them.
	out := strings.TrimSpace(c.stdout.String())
	last, found := strings.CutPrefix(out[strings.LastIndexByte(out, '\n')+1:], childStatsPrefix)
	if !found {
		t.Errorf("child server printed no counters; stdout:\n%s", out)
		return server.Stats{}, false
	}
	if err := json.Unmarshal([]byte(last), &stats); err != nil {
		t.Errorf("child server's counters %q: %v", last, err)
		return server.Stats{}, false
	}
	return stats, true
}

// Stderr returns everything the child has written to stderr so far: its server's log lines, and
// its errors.
func (c *Child) Stderr() string { return c.stderr.String() }

// LogLines returns the lines of the child's stderr so far that contain substr.
func (c *Child) LogLines(substr string) []string {
	var lines []string
	for _, line := range strings.Split(c.Stderr(), "\n") {
		if strings.Contains(line, substr) {
			lines = append(lines, line)
		}
	}
	return lines
}

// WaitForLog reports whether the child's stderr contains text within timeout. The child logs
// before it acts, but its stderr reaches the test through a copying goroutine, so a line can
// arrive after the effect it announces.
func (c *Child) WaitForLog(text string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(c.Stderr(), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// CPUTime returns the user plus system CPU time the child has used so far.
func (c *Child) CPUTime(t testing.TB) time.Duration {
	t.Helper()
	p, err := procstat.ReadProc(c.Pid)
	if err != nil {
		t.Fatalf("reading the child server's CPU time: %v", err)
	}
	return p.CPU()
}

// RSSKiB returns the child's resident set size (VmRSS) in KiB.
func (c *Child) RSSKiB(t testing.TB) int {
	t.Helper()
	st, err := procstat.ReadStatus(strconv.Itoa(c.Pid))
	if err != nil {
		t.Fatalf("reading the child server's VmRSS: %v", err)
	}
	return int(st.RSSBytes >> 10)
}

// lockedBuffer collects a child's stderr, written by exec's copying goroutine while the test
// reads it.
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
