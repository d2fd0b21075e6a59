package bench

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"echobench/internal/affinity"
)

// externalStartTimeout bounds how long an external server may take to accept its first
// connection: a C server listens in milliseconds, a JVM may take seconds.
const externalStartTimeout = 15 * time.Second

// acceptPoll is how often the harness tries to connect to a starting external server.
const acceptPoll = 20 * time.Millisecond

// tailLimit bounds what is kept of an external server's output, for error messages.
const tailLimit = 4 << 10

// external is a running external server: the process the harness started from a row's Command,
// in a process group of its own, so that stopping it reaches any children it forked.
type external struct {
	PID    int
	Addr   string // 127.0.0.1:port
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been reaped
	err    error         // its exit status, once exited is closed
	output *tail
}

// startExternal starts row's server on a free loopback port, pinned to cpus (nil: unpinned), and
// returns once it accepts connections.
func startExternal(row Row, cpus []int) (*external, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	command := strings.ReplaceAll(row.Command, "{port}", strconv.Itoa(port))
	// exec, so that the pid the harness accounts and signals is the server's, not a shell's.
	cmd := exec.Command("/bin/sh", "-c", "exec "+command)
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	// Setpgid: the server and whatever it forks are one group, which stop signals as a whole.
	// Pdeathsig: if the harness dies, so does the server (the signal follows the forking thread,
	// which is why that thread stays locked for the server's whole life, below).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	e := &external{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, exited: make(chan struct{}), output: out}

	started := make(chan error, 1)
	go func() {
		// The thread that forks is pinned first, so the server starts pinned and every thread
		// and process it creates inherits the mask, as internal/child does for the models.
		runtime.LockOSThread()
		restore := func() error { return nil }
		if cpus != nil {
			var err error
			if restore, err = affinity.PinThread(cpus); err != nil {
				runtime.UnlockOSThread()
				started <- err
				close(e.exited)
				return
			}
		}
		err := cmd.Start()
		rerr := restore()
		started <- err
		if err != nil {
			close(e.exited)
			if rerr == nil {
				runtime.UnlockOSThread()
			}
			return
		}
		e.err = cmd.Wait()
		close(e.exited)
		if rerr == nil {
			// A thread whose mask could not be restored must not go back to the scheduler:
			// it exits with this goroutine.
			runtime.UnlockOSThread()
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s server %q: %w", row.Name, command, err)
	}
	e.PID = cmd.Process.Pid
	if err := e.waitAccepting(externalStartTimeout); err != nil {
		e.Stop(time.Second)
		return nil, fmt.Errorf("%s server %q: %w", row.Name, command, err)
	}
	if cpus != nil {
		// It started pinned; this catches a server that reset its own mask.
		if on, total, err := affinity.Check(e.PID, cpus); err == nil && on < total {
			affinity.PinProcess(e.PID, cpus)
		}
	}
	return e, nil
}

// freePort asks the kernel for a free loopback port. Another process could take it before the
// server binds it; the server then fails to start and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitAccepting connects until the server accepts (and closes the probe at once), the server
// exits, or timeout passes.
func (e *external) waitAccepting(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", e.Addr, acceptPoll*5)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-e.exited:
			return fmt.Errorf("exited before accepting on %s: %v: %s", e.Addr, e.err, e.output.String())
		case <-time.After(acceptPoll):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting on %s after %v: %v; its output: %s", e.Addr, timeout, err, e.output.String())
		}
	}
}

// Exited reports why the server is gone if it already is ("" while it runs): a crash during a
// run makes the run n/a.
func (e *external) Exited() string {
	select {
	case <-e.exited:
		return fmt.Sprintf("the server exited during the run (%v): %s", e.err, lastLine(e.output.String()))
	default:
		return ""
	}
}

// Stop sends SIGTERM to the server's process group, then SIGKILL if it has not exited after
// grace, and waits until it is reaped.
func (e *external) Stop(grace time.Duration) {
	signal := func(sig syscall.Signal) {
		// ESRCH: the group is already gone, which is what we want.
		if err := syscall.Kill(-e.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			syscall.Kill(e.PID, sig)
		}
	}
	signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		// Not signalled again once reaped: its pid may belong to another process by now.
		return
	case <-time.After(grace):
	}
	signal(syscall.SIGKILL)
	<-e.exited
}

// externalArgs are the echobench flags that aim it at a running external server and account
// its process tree.
func externalArgs(e *external) []string {
	return []string{"-addr", e.Addr, "-server-pid", strconv.Itoa(e.PID)}
}

// tail keeps the last tailLimit bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailLimit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
