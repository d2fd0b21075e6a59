package blocking

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// maxReadBuffer is the most a thread reads, and so echoes, per read(2). 64 KiB matches the
// loopback MTU and a typical socket buffer's quantum: a bulk transfer costs few syscalls, and a
// thousand threads hold 64 MiB of buffers between them. A smaller outbound limit lowers it, since
// one buffer is all this model ever holds for a client.
const maxReadBuffer = 64 << 10

// threadCeiling caps the threads this model starts. Go aborts the whole process when it would
// create its 10,001st thread (the default of debug.SetMaxThreads); staying below that, with room
// for the runtime's own threads, turns "the process crashed" into "these clients were refused".
// It counts threads, not connections: a thread outlives its connection by the time it takes to
// exit, and under connection churn the threads on their way out can outnumber the connections
// being served (at -reconnect 1 with 100 clients and GOMAXPROCS 16 an earlier version that
// counted connections reached 10,000 threads and was aborted by the runtime).
const threadCeiling = 9000

// acceptBackoff paces accept retries after a resource shortage such as EMFILE: the shortage lasts
// until some connection closes, so retrying at once would spin a core to no purpose. The clients
// meanwhile wait in the listen backlog.
const acceptBackoff = 50 * time.Millisecond

func available() error { return nil }

type srv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	lfd     int
	addr    *net.TCPAddr
	bufSize int

	threads sync.WaitGroup // every locked goroutine: acceptors, pool threads, connection threads
	live    atomic.Int64   // locked threads started and not yet through threadDone
	exiting exitingThreads

	mu    sync.Mutex
	conns map[int]struct{} // fds being served, so that Close can shut them down

	acceptTrouble sockutil.LogBurst // EMFILE and kin at accept
	overCeiling   sockutil.LogBurst // connections refused at threadCeiling
}

// Start listens on cfg.Addr and serves every connection on an OS thread of its own: one thread
// per connection, or with cfg.Pool = N, N threads that each accept and serve one at a time.
func Start(cfg server.Config) (server.Server, error) {
	if cfg.Pool < 0 {
		return nil, fmt.Errorf("blocking: pool size %d is negative; use 0 for a thread per connection", cfg.Pool)
	}
	if cfg.Pool > threadCeiling {
		return nil, fmt.Errorf("blocking: a pool of %d threads is past Go's thread limit; use -pool %d or less", cfg.Pool, threadCeiling)
	}
	lfd, addr, err := sockutil.Listen(cfg.Addr, 0)
	if err != nil {
		return nil, fmt.Errorf("blocking: %w", err)
	}
	s := &srv{
		cfg:     cfg,
		lfd:     lfd,
		addr:    addr,
		bufSize: min(maxReadBuffer, cfg.Outbound()),
		conns:   map[int]struct{}{},
	}
	if cfg.Pool > 0 {
		for range cfg.Pool {
			s.startThread(s.poolThread)
		}
	} else {
		s.startThread(s.acceptThread)
	}
	go s.stopWhenClosing()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// lockThread dedicates the calling goroutine's OS thread to it for good. The goroutine never
// unlocks, so when it returns the runtime destroys the thread rather than reusing it: a
// connection costs a thread's creation and teardown, as it does in a C server.
func lockThread() (tid int) {
	runtime.LockOSThread()
	return unix.Gettid()
}

// startThread runs f on a goroutine of its own, which locks itself to a thread (lockThread) and
// ends with threadDone.
func (s *srv) startThread(f func()) {
	s.threads.Add(1)
	s.live.Add(1)
	go f()
}

// threadDone is a locked goroutine's last act: after it the goroutine returns and its thread dies.
// The thread leaves the live count only once recorded as exiting, which can take a /proc read and
// sometimes a sweep: a thread slow in getting there is still a thread.
func (s *srv) threadDone(tid int) {
	s.exiting.add(tid)
	s.live.Add(-1)
	s.threads.Done()
}

// poolThread is one of cfg.Pool threads. Each blocks in accept(2) on the shared listening socket
// (the kernel hands each new connection to one of them) and serves that client until it leaves.
// While all N are serving, new clients wait in the listen backlog: the pool caps concurrency.
func (s *srv) poolThread() {
	tid := lockThread()
	defer s.threadDone(tid)
	for {
		fd, ok := s.accept()
		if !ok || !s.track(fd) {
			return
		}
		s.serve(fd)
	}
}

// acceptThread accepts connections and starts a thread for each one.
func (s *srv) acceptThread() {
	tid := lockThread()
	defer s.threadDone(tid)
	for {
		fd, ok := s.accept()
		if !ok {
			return
		}
		if s.live.Load() >= threadCeiling {
			s.refuse(fd)
			continue
		}
		s.overCeiling.End(s.cfg.Log, "blocking: accepting again below %d connection threads", threadCeiling)
		if !s.track(fd) {
			return
		}
		s.startThread(func() { s.connThread(fd) })
	}
}

func (s *srv) connThread(fd int) {
	tid := lockThread()
	defer s.threadDone(tid)
	s.serve(fd)
}

// refuse closes a connection the model has no thread for: a client that is told at once does
// better than one that waits, and Go would abort the process on the thread past its limit.
func (s *srv) refuse(fd int) {
	unix.Close(fd)
	s.Rejected()
	s.overCeiling.Begin(s.cfg.Log, "blocking: %d connection threads open, refusing new connections (Go aborts past 10000 threads)", threadCeiling)
}

// accept blocks in accept4(2) until a client connects. It returns ok=false once the server is
// closing, or after a fatal error it has recorded.
func (s *srv) accept() (fd int, ok bool) {
	for {
		fd, _, err := unix.Accept4(s.lfd, unix.SOCK_CLOEXEC)
		if err == nil {
			s.acceptTrouble.End(s.cfg.Log, "blocking: accept works again")
			return fd, true
		}
		if s.IsClosing() {
			// Close shut the listener down, which wakes every thread blocked here with EINVAL.
			return -1, false
		}
		switch {
		case sockutil.IsAcceptRetryable(err):
			// A signal, or a client whose connection failed or reset while queued: nothing is
			// wrong with the listener, so accept the next one.
			continue
		case sockutil.IsResourceShortage(err):
			s.acceptTrouble.Begin(s.cfg.Log, "blocking: accept4 on fd %d: %v; retrying every %v while clients wait in the backlog", s.lfd, err, acceptBackoff)
			t := time.NewTimer(acceptBackoff)
			select {
			case <-s.Closing():
				t.Stop()
				return -1, false
			case <-t.C:
			}
		default:
			s.Fail(fmt.Errorf("blocking: accept4 on fd %d: %w", s.lfd, err))
			return -1, false
		}
	}
}

// track registers fd so that Close can wake the thread serving it. If Close has already begun it
// would never see fd, so track closes it instead and returns false.
func (s *srv) track(fd int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.IsClosing() {
		unix.Close(fd)
		return false
	}
	s.conns[fd] = struct{}{}
	s.Opened()
	return true
}

// serve echoes one connection on the calling thread until the client leaves or Close shuts the
// socket down. It needs no outbound queue: until a write has handed every byte to the kernel this
// thread does not read, so a client that stops reading stops being read from (backpressure by
// blocking), and the model holds one buffer per client, never more.
func (s *srv) serve(fd int) {
	defer s.closeConn(fd)
	// Small echoes go out at once instead of waiting for the previous segment's ACK (Nagle's
	// algorithm): Go's net package sets this on every TCP connection, so stdnet does the same.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil && !sockutil.IsPeerGone(err) {
		s.cfg.Log("blocking: setsockopt TCP_NODELAY on fd %d: %v", fd, err)
	}
	buf := make([]byte, s.bufSize)
	for {
		// Both phases of the read happen in this one call: the thread sleeps in read(2) until
		// the client sends something, then the kernel copies it into buf.
		n, err := sockutil.Read(fd, buf)
		if err != nil {
			if !sockutil.IsPeerGone(err) {
				s.cfg.Log("blocking: read fd %d: %v", fd, err)
			}
			return
		}
		if n == 0 {
			// End of stream: the client shut down its sending side (or Close shut ours down).
			// Everything read so far has been echoed, so the echo is complete.
			return
		}
		s.Read(n)
		if err := s.writeAll(fd, buf[:n]); err != nil {
			if !sockutil.IsPeerGone(err) {
				s.cfg.Log("blocking: send on fd %d: %v", fd, err)
			}
			return
		}
	}
}

// writeAll blocks until every byte of p is in the socket's send buffer. It uses send(2) with
// MSG_NOSIGNAL rather than write(2) so that a client that has gone away yields EPIPE, not a
// SIGPIPE: Go's runtime happens to ignore SIGPIPE on sockets, but the model should not rely on it.
func (s *srv) writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.SendmsgN(fd, p, nil, nil, unix.MSG_NOSIGNAL)
		if n > 0 {
			// A blocking send returns short only when a signal interrupts it midway.
			s.Wrote(n)
			p = p[n:]
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
	}
	return nil
}

// closeConn is a connection's end, run by the thread that served it. The fd is closed under mu,
// so Close never shuts down an fd number that has been closed and handed to someone else.
func (s *srv) closeConn(fd int) {
	s.mu.Lock()
	delete(s.conns, fd)
	// On Linux close(2) releases the fd even when it reports an error (EINTR included), so there
	// is nothing to retry.
	unix.Close(fd)
	s.mu.Unlock()
	s.Closed()
}

// Close asks every thread to stop and returns once they have all exited and every fd is closed.
func (s *srv) Close() error {
	s.BeginClose()
	return s.Wait()
}

// stopWhenClosing tears the server down when Close is called or a thread records a fatal error.
func (s *srv) stopWhenClosing() {
	<-s.Closing()
	// Threads are woken with shutdown(2), not close(2): closing an fd that another thread is
	// blocked on does not wake it on Linux, and the fd number could be reused under it. shutdown
	// on the listener wakes every accept(2) with EINVAL; on a connection it ends a blocked read(2)
	// with 0 bytes and a blocked send(2) with EPIPE. Each fd stays open until its owner is done.
	if err := unix.Shutdown(s.lfd, unix.SHUT_RDWR); err != nil {
		s.Fail(fmt.Errorf("blocking: shutdown listener fd %d: %w", s.lfd, err))
	}
	s.mu.Lock()
	for fd := range s.conns {
		// ENOTCONN means the client has already reset the connection, and its thread is
		// waking up anyway.
		unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	s.mu.Unlock()
	s.threads.Wait()
	if err := unix.Close(s.lfd); err != nil {
		s.Fail(fmt.Errorf("blocking: close listener fd %d: %w", s.lfd, err))
	}
	if err := s.exiting.waitGone(); err != nil {
		s.Fail(fmt.Errorf("blocking: %w", err))
	}
	s.Stopped()
}
