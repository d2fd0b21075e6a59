package child

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"echobench/internal/procstat"
	"echobench/server"
)

// maxLineBytes bounds one line read from the child. A stats line is a few hundred bytes; a longer
// line is not ours and is dropped rather than buffered without limit.
const maxLineBytes = 64 << 10

// stderrTailLines is how many of the child's last stderr lines are kept for error messages.
const stderrTailLines = 20

// DefaultStartTimeout is how long a child has to print its address.
const DefaultStartTimeout = 15 * time.Second

// Options says which server to start and how.
type Options struct {
	Binary string // path to an echoserver binary; "" = FindBinary's choice
	Model  string
	// Config is the server's configuration, passed as its flags (Config.Args). Addr and Logf are
	// ignored: the child listens on 127.0.0.1:0 and logs to its stderr.
	Config server.Config
	// Role, if set, is a reexec role that runs a variant of Main (through Serve, with hooks)
	// registered by the caller; the running executable is then always the one re-executed, and
	// Args are the variant's own flags.
	Role string
	Args []string
	// CPUs pins the server to these CPUs from its first instruction; nil leaves it unpinned.
	CPUs []int
	// Stderr receives the child's stderr lines as they come; nil discards them (the last
	// stderrTailLines are kept either way, for error messages).
	Stderr       io.Writer
	StartTimeout time.Duration
}

// Server is a started child server.
type Server struct {
	Addr     string
	PID      int
	Binary   string
	SelfExec bool // the binary is this executable re-executed in a reexec role
	// PinnedThreads and Threads say how many of the child's threads were on the requested CPUs
	// when checked just after start.
	PinnedThreads, Threads int

	cmd       *exec.Cmd
	exited    chan struct{}
	stdoutEOF chan struct{}
	waitErr   error
	state     *os.ProcessState

	// reapMu orders the process-group SIGKILL before the reaping of the group's leader: while
	// the leader is unreaped (alive or a zombie) its pid, which is the group's id, cannot be
	// handed out again, so a kill of -PID reaches only our own child's group. Once reaped is
	// set the number may belong to someone else and the group is never signalled again.
	reapMu sync.Mutex
	reaped bool

	// stopOnce makes Stop idempotent: the first call stops the child, later ones return its
	// Exit without signalling anything.
	stopOnce sync.Once
	stopExit Exit

	mu        sync.Mutex
	stats     chan server.Stats
	lastStats *server.Stats
	tail      []string
}

// Exit is how the child ended.
type Exit struct {
	Status string // "exit status 0", "signal: killed", ...
	Code   int    // exit code, -1 if killed by a signal
	Killed bool   // we had to SIGKILL it after the grace period
	// Usage is wait4's rusage: the child's whole lifetime plus every descendant it reaped, so it
	// holds exact CPU and context-switch totals that sampling cannot see (exited threads).
	Usage procstat.Usage
	// Stats is the last stats line the child printed, normally the one it prints at exit.
	Stats *server.Stats
}

// FindBinary picks the server binary: override if given, else an echoserver next to the running
// executable, else the running executable itself (selfExec).
func FindBinary(override string) (path string, selfExec bool, err error) {
	if override != "" {
		if _, err := exec.LookPath(override); err != nil {
			return "", false, fmt.Errorf("server binary %s: %w", override, err)
		}
		return override, false, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("find own executable: %w", err)
	}
	beside := filepath.Join(filepath.Dir(exe), "echoserver")
	if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return beside, false, nil
	}
	return exe, true, nil
}

// CommandArgs returns the child's arguments for opts.
func (o Options) CommandArgs() []string {
	// No -quiet: the server's warnings (EMFILE, select's fd ceiling, a dying worker) are part
	// of the result, and echobench forwards them to its stderr.
	args := append([]string{"-model", o.Model, "-addr", "127.0.0.1:0"}, o.Config.Args()...)
	return append(args, o.Args...)
}

// Exited is closed once the child has exited and been reaped.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// ExitError describes how the child ended; call it only after Exited is closed.
func (s *Server) ExitError() error {
	if s.waitErr != nil {
		return s.waitErr
	}
	return fmt.Errorf("%s", s.state)
}

// StderrTail returns the child's last stderr lines.
func (s *Server) StderrTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// LastStats returns the last stats line the child printed, or nil.
func (s *Server) LastStats() *server.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastStats
}

func (s *Server) readStdout(r io.ReadCloser, addr chan<- string) {
	defer close(s.stdoutEOF)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineBytes)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			addr <- line
			continue
		}
		st, ok := ParseStats(line)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.lastStats = &st
		s.mu.Unlock()
		select {
		case s.stats <- st:
		default:
			// Nobody is waiting for this one; LastStats still has it.
		}
	}
	if first {
		close(addr)
	}
}

func (s *Server) readStderr(r io.ReadCloser, forward io.Writer) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineBytes)
	for sc.Scan() {
		line := sc.Text()
		if forward != nil {
			fmt.Fprintln(forward, line)
		}
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > stderrTailLines {
			s.tail = s.tail[len(s.tail)-stderrTailLines:]
		}
		s.mu.Unlock()
	}
}

// errNoStats is returned by RequestStats when the child does not answer.
var errNoStats = errors.New("no stats line")
