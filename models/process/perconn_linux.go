package process

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// perConn is the process-per-connection server: the parent accepts, and each connection is
// served by a child process of its own, which exits when the connection ends.
type perConn struct {
	server.Lifecycle
	server.Counters
	cfg      server.Config
	addr     net.Addr
	listener *os.File
	rawLn    syscall.RawConn // the listener, for accept4 parked in the netpoller
	exe      string
	args     []string
	slots    chan struct{} // one token per running child: at most DefaultMaxChildren
	mu       sync.Mutex
	children map[*child]struct{}
	wg       sync.WaitGroup // the reaper goroutines, one per child
	accepted chan struct{}  // closed when the accept loop has returned

	acceptTrouble sockutil.LogBurst // EMFILE and kin at accept
	spawnTrouble  sockutil.LogBurst // fork or exec failures
}

func startPerConn(cfg server.Config, ln *net.TCPListener, exe string, args []string) (server.Server, error) {
	// A net.Listener's RawConn cannot Read (it returns EINVAL), so the parent keeps the listener
	// as an os.File instead: a dup of the same non-blocking socket, still in the netpoller, whose
	// RawConn parks an accept4 that would block until the socket is readable, and whose Close
	// wakes it.
	listener, err := ln.File()
	addr := ln.Addr()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("process: listener file: %w", err)
	}
	rawLn, err := listener.SyscallConn()
	if err != nil {
		listener.Close()
		return nil, fmt.Errorf("process: raw listener: %w", err)
	}
	maxChildren, err := childCap()
	if err != nil {
		listener.Close()
		return nil, fmt.Errorf("process: %w", err)
	}
	s := &perConn{
		cfg: cfg, addr: addr, listener: listener, rawLn: rawLn, exe: exe, args: args,
		slots:    make(chan struct{}, maxChildren),
		children: map[*child]struct{}{},
		accepted: make(chan struct{}),
	}
	go s.acceptLoop()
	return s, nil
}

// Each running child holds fdsPerChild fds in the parent (its pidfd and the read end of its
// report pipe); fdReserve more cover the parent's own (listener, epoll, stdio) and the few a spawn
// opens for a moment (the connection, the pipe's write end, /dev/null for the child's stdin and
// stdout).
const (
	fdsPerChild = 2
	fdReserve   = 32
)

// childCap is DefaultMaxChildren, lowered if the parent's fd limit cannot hold that many
// children: past the cap a client waits in the backlog, which is better than being accepted and
// then closed because the fork ran out of fds.
func childCap() (int, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	n := min(uint64(DefaultMaxChildren), (lim.Cur-min(lim.Cur, fdReserve))/fdsPerChild)
	if n < 1 {
		return 0, fmt.Errorf("fd limit %d is too low to run a single child; raise ulimit -n", lim.Cur)
	}
	return int(n), nil
}

func (s *perConn) Addr() net.Addr { return s.addr }

// Stats returns the counts so far. Bytes are counted as children report them: a live connection's
// bytes arrive in progress records (each second or 64 MiB of echoing, see progressEvery), so a
// mid-run snapshot lags by up to that much per connection; after Close the counts are exact.
func (s *perConn) Stats() server.Stats { return s.Snapshot() }

// acceptLoop takes a child slot, then a connection, then starts the child. Taking the slot first
// is what leaves clients in the listen backlog, not in the parent, once DefaultMaxChildren run.
func (s *perConn) acceptLoop() {
	defer close(s.accepted)
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.Closing():
			return
		}
		fd, err := s.accept()
		if err != nil {
			<-s.slots
			if s.IsClosing() || errors.Is(err, os.ErrClosed) {
				return
			}
			if !sockutil.IsResourceShortage(err) {
				// EINVAL, EBADF and the like: the listener itself is broken, and retrying would
				// fail the same way forever. Stop the server and say why; the teardown runs on
				// its own goroutine because it waits for this loop to return.
				if s.Fail(fmt.Errorf("process: %w; the listener cannot accept, stopping", err)) {
					go s.shutdown()
				}
				return
			}
			// EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog until some
			// fd or memory is freed. Wait; retrying at once would spin. Logged once per burst,
			// since the same error repeats every retry until it clears.
			s.acceptTrouble.Begin(s.cfg.Log, "process: %v; retrying every %v while clients wait in the backlog", err, acceptBackoff)
			s.pause()
			continue
		}
		s.acceptTrouble.End(s.cfg.Log, "process: accept works again")
		s.startChild(fd)
	}
}

// accept takes one connection off the listener as a raw, blocking, close-on-exec fd. The raw
// accept4 skips net.Conn entirely: the parent never reads the connection, so registering it
// with the netpoller (and making it non-blocking) would be wasted work that the child then has
// to undo. accept4 does not copy O_NONBLOCK from the listener, so the new fd is blocking, as
// the child's echo loop wants.
func (s *perConn) accept() (int, error) {
	var nfd int
	var aerr error
	err := s.rawLn.Read(func(lfd uintptr) bool {
		for {
			nfd, _, aerr = unix.Accept4(int(lfd), unix.SOCK_CLOEXEC)
			switch {
			case sockutil.IsAcceptRetryable(aerr):
				continue // a signal, or a client that failed while queued: take the next
			case aerr == unix.EAGAIN:
				return false // the backlog is empty: park in the netpoller until it is not
			}
			return true
		}
	})
	if err != nil {
		return -1, err // the listener was closed
	}
	if aerr != nil {
		return -1, fmt.Errorf("accept4: %w", aerr)
	}
	return nfd, nil
}

func (s *perConn) startChild(fd int) {
	conn := os.NewFile(uintptr(fd), "tcp-conn") // blocking fd: os keeps it out of the netpoller
	c, err := spawn(s.exe, s.args, conn)
	conn.Close() // the child has its own copy now; keeping ours would leak an fd per connection
	if err != nil {
		// fork or exec failed (EAGAIN, ENOMEM): the client sees its connection closed.
		<-s.slots
		s.Rejected()
		s.spawnTrouble.Begin(s.cfg.Log, "process: %v; connections closed unserved", err)
		s.pause()
		return
	}
	s.spawnTrouble.End(s.cfg.Log, "process: starting children works again")
	s.Opened()
	s.mu.Lock()
	s.children[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.reap(c)
}

// reap counts a child's bytes and waits for it, then frees its slot. Every record a connection
// child sends, progress or closed, carries the bytes moved since its previous one.
func (s *perConn) reap(c *child) {
	defer s.wg.Done()
	err := c.collect(func(r record) {
		s.Read(int(r.in))
		s.Wrote(int(r.out))
	})
	if err != nil && !s.IsClosing() {
		s.cfg.Log("process: connection child %d: %v", c.pid(), err)
	}
	s.mu.Lock()
	delete(s.children, c)
	s.mu.Unlock()
	s.Closed()
	<-s.slots
}

func (s *perConn) pause() {
	select {
	case <-s.Closing():
	case <-time.After(acceptBackoff):
	}
}

// Close stops accepting, then stops every child and waits until each one is reaped.
func (s *perConn) Close() error {
	if s.BeginClose() {
		s.shutdown()
	}
	return s.Wait()
}

// shutdown tears the server down, once, for Close or for a fatal accept error.
func (s *perConn) shutdown() {
	s.listener.Close()
	<-s.accepted // no child is started after this
	s.mu.Lock()
	children := make([]*child, 0, len(s.children))
	for c := range s.children {
		children = append(children, c)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	terminate(children, done)
	<-done
	s.Stopped()
}

// childPIDs lists the running connection children, for tests.
func (s *perConn) childPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.children))
	for c := range s.children {
		pids = append(pids, c.pid())
	}
	return pids
}
