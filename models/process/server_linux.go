package process

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"echobench/internal/reexec"
	"echobench/internal/sockutil"
	"echobench/server"
)

// Start listens on cfg.Addr and serves each connection in a process of its own (cfg.Pool 0),
// or in a fixed pool of cfg.Pool prefork worker processes.
func Start(cfg server.Config) (server.Server, error) {
	if cfg.Pool < 0 {
		return nil, fmt.Errorf("process: pool %d: want 0 (a process per connection) or a positive pool size", cfg.Pool)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("process: find this binary to re-execute: %w", err)
	}
	ln, err := listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	if cfg.Pool == 0 {
		return startPerConn(cfg, ln, exe, childArgs(cfg, roleConn))
	}
	return startPrefork(cfg, ln, exe, childArgs(cfg, roleWorker))
}

// listen opens the listener with sockutil.Listen, as every raw-fd model does, and wraps it in a
// net.TCPListener: the per-connection parent parks its accepts in Go's netpoller through the
// listener's RawConn, and the prefork parent hands its workers a dup of it from File.
func listen(addr string) (*net.TCPListener, error) {
	fd, _, err := sockutil.Listen(addr, sockutil.ListenOptions{Nonblocking: true})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close() // FileListener holds a dup of it
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listener on %s: %w", addr, err)
	}
	return ln.(*net.TCPListener), nil
}

// childArgs are what a child needs to know, as the arguments of its reexec role (see runChild):
// its role, the parent's pid, and the server's configuration as its own flags (Config.Args,
// which the child parses back with Config.RegisterFlags), so that every setting a child acts on,
// its buffer size and its per-message handler among them, crosses the exec by the one encoding
// echoserver's command line uses too.
func childArgs(cfg server.Config, role string) []string {
	return append([]string{role, strconv.Itoa(os.Getpid())}, cfg.Args()...)
}

// childEnviron is the parent's environment with the reexec role set, built once rather than per
// connection. GOMAXPROCS=1 because a child serves one connection at a time with blocking
// syscalls: more Ps would only start more idle threads and heap arenas in every child.
var childEnviron = sync.OnceValue(func() []string { return reexec.Environ(reexecRole, "GOMAXPROCS=1") })

// A child is one started helper process and the read end of its report pipe.
type child struct {
	cmd     *exec.Cmd
	report  *os.File
	started time.Time
}

// spawn re-executes this binary as a child that finds socket at childSocketFD and the write end
// of a fresh report pipe at childReportFD. The caller still owns socket.
//
// os/exec forks with clone(CLONE_VM|CLONE_VFORK), so the parent's page tables are not copied;
// the child execs at once. Every fd the parent opens is close-on-exec (Go's default, and accept4
// with SOCK_CLOEXEC), so a child inherits only what ExtraFiles names, never a sibling's
// connection. Pdeathsig makes the kernel SIGKILL the child if the parent dies, so no orphan keeps
// serving; Go's forkExec already closes the race where the parent dies before Pdeathsig is armed
// (it compares getppid with the parent's pid right after the prctl), and runChild repeats that
// check only as a redundant safety net.
//
// Setpgid puts every child in a process group of its own. A terminal's Ctrl-C sends SIGINT to
// the whole foreground group; were the children in it, they would die before the parent's Close
// could stop them in order, and every byte they moved would go unreported. Outside the group,
// the parent's Close (SIGTERM) is the only way a child is told to stop, and Pdeathsig still
// cleans up if the parent dies.
func spawn(exe string, args []string, socket *os.File) (*child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("report pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       append([]string{exe}, args...),
		Env:        childEnviron(),
		ExtraFiles: []*os.File{socket, w},
		// A child's crash report reaches the operator. Being an *os.File, stderr is handed to
		// the child as is, with no copying goroutine in the parent.
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true},
	}
	err = cmd.Start()
	w.Close() // the child has its own copy; ours must go, or the parent never sees EOF on r
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	return &child{cmd: cmd, report: r, started: time.Now()}, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// collect passes each record the child reports to handle until the child exits (EOF on the pipe:
// every copy of the write end is gone), then reaps it. Reading to EOF before Wait means every
// record a child wrote is counted before the parent treats the child as gone.
func (c *child) collect(handle func(record)) error {
	buf := make([]byte, recordSize)
	for {
		if _, err := io.ReadFull(c.report, buf); err != nil {
			break // io.EOF: the child has exited. Records are atomic, so there is no torn tail.
		}
		handle(decodeRecord(buf))
	}
	c.report.Close()
	err := c.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil // told to stop before its own SIGTERM handler was installed: a clean stop
		}
	}
	return err
}

// terminate asks every child to stop (SIGTERM: a child shuts its connection down, reports and
// exits), and SIGKILLs those still alive after terminateGrace. done is closed once all are reaped.
// Signalling a child that has already been reaped is harmless: os.Process holds a pidfd, so the
// signal cannot reach a stranger that reused the pid.
func terminate(children []*child, done <-chan struct{}) {
	for _, c := range children {
		c.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
		return
	case <-time.After(terminateGrace):
	}
	for _, c := range children {
		c.cmd.Process.Kill()
	}
}
