package child

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/affinity"
	"echobench/internal/procstat"
	"echobench/internal/reexec"
	"echobench/server"
)

// Start starts the server child and returns once it has printed its address. On any failure the
// child is killed and reaped before Start returns.
func Start(opts Options) (*Server, error) {
	cmd, self, err := command(opts)
	if err != nil {
		return nil, err
	}
	bin := cmd.Path
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for server stdout: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("pipe for server stderr: %w", err)
	}
	// The pipes are *os.File, so the child writes to them directly and Wait does not wait for
	// copying goroutines: it is a plain wait4.
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so that a ^C on the terminal reaches echobench alone (which
		// then stops the server in order) and a last SIGKILL can reach helpers it left behind.
		Setpgid: true,
		// If echobench dies without stopping it, the server dies too. The signal fires when
		// the forking *thread* exits, which is why the forking goroutine below keeps its thread
		// locked until the child has been reaped.
		Pdeathsig: syscall.SIGKILL,
	}
	s := &Server{
		Binary:    bin,
		SelfExec:  self,
		cmd:       cmd,
		exited:    make(chan struct{}),
		stdoutEOF: make(chan struct{}),
		stats:     make(chan server.Stats, 1),
	}

	started := make(chan error, 1)
	go func() {
		// This goroutine owns the thread that forks the child, for the child's whole life (see
		// Pdeathsig above), and pins that thread first so the child starts pinned.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		restore := func() error { return nil }
		if opts.CPUs != nil {
			var err error
			if restore, err = affinity.PinThread(opts.CPUs); err != nil {
				started <- err
				return
			}
		}
		err := cmd.Start()
		if rerr := restore(); rerr != nil && err == nil {
			// The child already runs; it is stopped by the caller's error path. This thread
			// keeps the server's mask, so it must not go back to the scheduler.
			started <- rerr
			s.reap()
			runtime.LockOSThread()
			return
		}
		started <- err
		if err != nil {
			close(s.exited)
			return
		}
		s.reap()
	}()
	startErr := <-started
	outW.Close()
	errW.Close()
	if startErr != nil && cmd.Process == nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", bin, startErr)
	}
	s.PID = cmd.Process.Pid
	addr := make(chan string, 1)
	go s.readStdout(outR, addr)
	go s.readStderr(errR, opts.Stderr)
	if startErr != nil {
		s.Stop(0)
		return nil, fmt.Errorf("start %s: %w", bin, startErr)
	}

	select {
	case line, ok := <-addr:
		if !ok {
			s.Stop(time.Second)
			return nil, fmt.Errorf("server %s -model %s exited before printing its address: %w: %s", bin, opts.Model, s.ExitError(), s.StderrTail())
		}
		a, err := ParseAddr(line)
		if err != nil {
			hint := ""
			if self {
				hint = " (does this binary's main or TestMain call reexec.Run first?)"
			}
			s.Stop(time.Second)
			return nil, fmt.Errorf("server %s -model %s%s: %w: %s", bin, opts.Model, hint, err, s.StderrTail())
		}
		s.Addr = a
	case <-time.After(timeout):
		s.Stop(time.Second)
		return nil, fmt.Errorf("server %s -model %s printed no address within %v: %s", bin, opts.Model, timeout, s.StderrTail())
	}
	if opts.CPUs != nil {
		// The child started pinned, so this is a check; it also pins any thread that somehow
		// is not, rather than trusting inheritance blindly.
		if on, total, err := affinity.Check(s.PID, opts.CPUs); err == nil && on < total {
			affinity.PinProcess(s.PID, opts.CPUs)
		}
		s.PinnedThreads, s.Threads, _ = affinity.Check(s.PID, opts.CPUs)
	}
	return s, nil
}

// command returns the child's command: an echoserver binary, or this executable re-executed in
// its reexec role (selfExec).
func command(opts Options) (cmd *exec.Cmd, selfExec bool, err error) {
	role := opts.Role
	if role == "" {
		bin, self, err := FindBinary(opts.Binary)
		if err != nil {
			return nil, false, err
		}
		if !self {
			return exec.Command(bin, opts.CommandArgs()...), false, nil
		}
		role = RoleServer
	}
	cmd, err = reexec.Command(role, opts.CommandArgs()...)
	return cmd, true, err
}

// RequestStats asks the child for its counters (SIGUSR1) and waits for the answer.
func (s *Server) RequestStats(timeout time.Duration) (server.Stats, error) {
	select {
	case <-s.stats: // a stale line nobody asked for
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return server.Stats{}, fmt.Errorf("signal server %d: %w", s.PID, err)
	}
	select {
	case st := <-s.stats:
		return st, nil
	case <-s.exited:
		return server.Stats{}, fmt.Errorf("server %d exited: %w", s.PID, errNoStats)
	case <-time.After(timeout):
		return server.Stats{}, fmt.Errorf("server %d did not answer SIGUSR1 within %v: %w", s.PID, timeout, errNoStats)
	}
}

// stdoutDrainTimeout bounds how long Stop waits for the last stats line once the child has
// exited: a helper process that inherited the child's stdout could keep the pipe open.
const stdoutDrainTimeout = time.Second

// reap waits for the child to exit, kills what is left of its process group while the child is
// still an unreaped zombie (so the group's id cannot have been reused), and only then reaps it.
// Helpers the child left behind die with it rather than outliving the run.
func (s *Server) reap() {
	pid := s.cmd.Process.Pid
	for {
		// WNOWAIT leaves the child a zombie: its pid, and with it the group id, stays ours.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue // a signal arrived while waiting; the child has not exited yet
		}
		if err == nil {
			s.killGroup()
		} else {
			// Without knowing the leader is still unreaped, the group is not safe to signal.
			fmt.Fprintf(os.Stderr, "echobench: waitid server %d: %v; its process group is not killed\n", pid, err)
		}
		break
	}
	s.reapMu.Lock()
	s.waitErr = s.cmd.Wait()
	s.state = s.cmd.ProcessState
	s.reaped = true
	s.reapMu.Unlock()
	close(s.exited)
}

// killGroup sends SIGKILL to the child's process group, unless the child has been reaped, after
// which the group's id may name an unrelated group. ESRCH (no member left) is not an error.
func (s *Server) killGroup() {
	s.reapMu.Lock()
	defer s.reapMu.Unlock()
	if s.reaped {
		return
	}
	// cmd.Process, unlike s.PID, is set before the reaper starts, so the reaper may read it.
	pgid := s.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		fmt.Fprintf(os.Stderr, "echobench: kill server process group %d: %v\n", pgid, err)
	}
}

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL to the child's process group (the
// child and helpers it left behind), and returns how the child ended. Whenever the child exits,
// on its own or not, its leftover helpers are killed before it is reaped (see reap). Stop is
// safe to call after the child has already exited, and more than once, concurrently too: every
// call returns the first call's Exit.
func (s *Server) Stop(grace time.Duration) Exit {
	s.stopOnce.Do(func() { s.stopExit = s.stop(grace) })
	return s.stopExit
}

func (s *Server) stop(grace time.Duration) Exit {
	var killed bool
	select {
	case <-s.exited:
	default:
		// ESRCH means it is exiting already; reap still collects it.
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(grace):
			killed = true
			// The group's id is the child's pid, still ours while the child is unreaped;
			// killGroup checks that under the reaper's lock. The process itself is signalled
			// through its pidfd too, which is safe whenever it is reaped.
			s.killGroup()
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	select {
	case <-s.stdoutEOF:
	case <-time.After(stdoutDrainTimeout):
	}
	e := Exit{Killed: killed, Stats: s.LastStats(), Code: -1}
	if s.state != nil {
		e.Status = s.state.String()
		e.Code = s.state.ExitCode()
		ru, _ := s.state.SysUsage().(*syscall.Rusage)
		e.Usage = procstat.FromRusage(ru)
	} else if s.waitErr != nil {
		e.Status = s.waitErr.Error()
	}
	return e
}
