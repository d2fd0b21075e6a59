package blocking

import (
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

// threadCeiling caps the threads this model starts. Go aborts the whole process when it would
// create its 10,001st thread (the default of debug.SetMaxThreads); staying below that, with room
// for the runtime's own threads, turns "the process crashed" into "these clients were refused".
// It counts threads, not connections: a thread outlives its connection by the time it takes to
// exit, and under connection churn the threads on their way out can outnumber the connections
// being served (at -reconnect 1 with 100 clients and GOMAXPROCS 16 an earlier version that
// counted connections reached the runtime's limit and was aborted).
const threadCeiling = 9000

// ThreadCeiling is threadCeiling, for the harness (package bench), which decides before a run
// that a cell past it is n/a for this model.
const ThreadCeiling = threadCeiling

// acceptBackoff paces accept retries after a resource shortage such as EMFILE: the shortage lasts
// until some connection closes, so retrying at once would spin a core to no purpose. The clients
// meanwhile wait in the listen backlog.
const acceptBackoff = 50 * time.Millisecond

type srv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	lfd     int
	addr    *net.TCPAddr
	bufSize int
	handler server.Handler // cfg's per-message cost, run on the connection's thread

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
	lfd, addr, err := sockutil.Listen(cfg.Addr, sockutil.ListenOptions{})
	if err != nil {
		return nil, fmt.Errorf("blocking: %w", err)
	}
	s := &srv{
		cfg:     cfg,
		lfd:     lfd,
		addr:    addr,
		bufSize: sockutil.ReadBuffer(cfg.Outbound()),
		handler: cfg.Handler(),
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
