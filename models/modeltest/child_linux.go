package modeltest

// A child server is the test binary re-executed as a server process. A test runs a server that
// way when it watches the server from outside: its resident memory and CPU time are then the
// server's alone, not blurred by the test's own clients, and its RLIMIT_NOFILE can be lowered
// without starving the test of fds.
//
// The child is cmd/echoserver's own code (package internal/child) in its reexec role: the
// configuration travels as server.Config's flags and echoserver's fd-limit flags
// (child.FDLimits), and the address and counters come back by that package's line protocol.

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/server"
)

// childStopTimeout bounds how long Stop waits for a child to close its server and exit. The
// conformance suite allows Close 20s; the rest is slack for -race on a loaded two-core machine.
const childStopTimeout = 30 * time.Second

// ChildOptions configure a child server.
type ChildOptions struct {
	// Model is the registered name of the model to serve. The test binary must link the model's
	// package (a blank import will do), so that its init registers it in the child too.
	Model string
	// Config is the server's configuration. Addr is ignored (the child listens on 127.0.0.1:0).
	// Logf must be nil: the child writes each log line to its stderr, which Child.WaitForLog and
	// Child.LogLines read.
	Config server.Config
	// NoFile, if above zero, is the RLIMIT_NOFILE (soft and hard) the child sets before Start.
	NoFile uint64
	// FDSlots, if above zero, makes the child lower RLIMIT_NOFILE after Start so that exactly
	// FDSlots more fds can be opened: the server can then hold that many connections and no more.
	FDSlots int
}

// Child is a server running in a child process, started by StartChild.
type Child struct {
	// Addr is the server's listening address.
	Addr string
	// Pid is the child's process id, for reading its /proc entries.
	Pid int

	srv     *child.Server
	stderr  *lockedBuffer
	stopped atomic.Bool // Stop was called: the test's cleanup need not kill the child
}

func (o ChildOptions) launch(stderr *lockedBuffer) child.Options {
	return child.Options{
		Model:  o.Model,
		Config: o.Config,
		Role:   child.RoleServer, // this test binary, which links the model, not an echoserver beside it
		Args:   child.FDLimits{NoFile: o.NoFile, Slots: o.FDSlots}.Args(),
		Stderr: stderr,
	}
}

// StartChild re-executes the test binary as a child server and returns once the server listens.
// The test package's TestMain must call reexec.Run. A child the test does not Stop is killed
// when the test ends.
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
	c := &Child{stderr: &lockedBuffer{}}
	srv, err := child.Start(opts.launch(c.stderr))
	if err != nil {
		t.Fatalf("child server %s: %v; stderr:\n%s", opts.Model, err, c.Stderr())
	}
	c.srv, c.Addr, c.Pid = srv, srv.Addr, srv.PID
	t.Cleanup(func() {
		if !c.stopped.Load() {
			srv.Stop(0)
		}
	})
	return c
}

// Stop tells the child to stop (SIGTERM), which makes it close its server, print its final
// counters and exit, and returns those counters. If the child does not exit within 30s (Stop
// then kills it), exits with a status other than 0, or prints no counters, Stop marks the test
// failed, showing the child's stderr, and returns ok false: the test decides whether to go on
// without them.
func (c *Child) Stop(t testing.TB) (stats server.Stats, ok bool) {
	t.Helper()
	c.stopped.Store(true)
	exit := c.srv.Stop(childStopTimeout)
	switch {
	case exit.Killed:
		t.Errorf("child server did not exit within %v of being told to; stderr:\n%s", childStopTimeout, c.Stderr())
		return server.Stats{}, false
	case exit.Code != 0:
		t.Errorf("child server: %s; stderr:\n%s", exit.Status, c.Stderr())
		return server.Stats{}, false
	case exit.Stats == nil:
		t.Errorf("child server printed no counters; stderr:\n%s", c.Stderr())
		return server.Stats{}, false
	}
	return *exit.Stats, true
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

// lockedBuffer collects a child's stderr, written by package child's reading goroutine while
// the test reads it.
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
