package selectmodel

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// fdSetSize is FD_SETSIZE: an fd_set is a fixed bitmap of 1024 bits, so select(2) can watch fds
// 0 to 1023 and nothing above. Setting the bit of a higher fd would write past the bitmap.
const fdSetSize = unix.FD_SETSIZE

// ceilingMessage is what a user reads when a socket lands past the fd_set: the limit and the way
// out.
const ceilingMessage = "select(2) cannot watch fd 1024 or above; use -model epoll"

// acceptPause is how long the listener is left out of the read set after accept fails for want of
// a file descriptor (EMFILE, ENFILE) or of kernel memory. The pending connection stays in the
// backlog, so the listener stays readable: watching it at once would spin the loop on an error
// that only goes away when some connection closes.
const acceptPause = 50 * time.Millisecond

// rejectLogInterval rate-limits the message about connections closed at the fd ceiling: the
// first is logged at once, the rest at most once per interval as a count, so ten thousand
// rejected connections print a few lines while Stats().Rejected stays exact.
const rejectLogInterval = time.Second

type srv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	handler server.Handler // cfg's per-message cost, run inline on the loop's thread
	addr    *net.TCPAddr
	waker   *sockutil.Waker // Close writes it to wake the loop out of select

	// Everything below is owned by the loop goroutine alone.
	listenFD int
	readBuf  []byte
	pool     *sockutil.Pool
	conns    [fdSetSize]*conn // indexed by fd: every watched fd is below fdSetSize
	highest  int              // highest fd in conns, or -1

	acceptPausedUntil time.Time         // zero while the listener is watched
	acceptTrouble     sockutil.LogBurst // EMFILE and kin at accept

	rejectsUnlogged int       // rejected since the last ceiling message
	rejectLoggedAt  time.Time // when the last ceiling message was logged
}

// conn is one client connection.
type conn struct {
	fd         int
	outbound   sockutil.Outbound // what the client sent and has not yet been able to take back
	readClosed bool              // the client shut down its sending side: flush, then close
}

// start binds the listener, creates the waker, and starts the loop on its own goroutine.
func start(cfg server.Config) (server.Server, error) {
	lfd, addr, err := sockutil.Listen(cfg.Addr, sockutil.ListenOptions{Nonblocking: true})
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if lfd >= fdSetSize {
		unix.Close(lfd)
		return nil, fmt.Errorf("select: listening socket on %s got fd %d: %s", cfg.Addr, lfd, ceilingMessage)
	}
	// The waker is watched in the read set like any socket, so it must sit below the ceiling too.
	waker, err := sockutil.NewWaker()
	if err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("select: %w", err)
	}
	if waker.FD() >= fdSetSize {
		unix.Close(lfd)
		waker.Close()
		return nil, fmt.Errorf("select: wakeup eventfd got fd %d: %s", waker.FD(), ceilingMessage)
	}
	s := &srv{
		cfg:      cfg,
		handler:  cfg.Handler(),
		addr:     addr,
		waker:    waker,
		listenFD: lfd,
		readBuf:  make([]byte, sockutil.ReadBuffer(cfg.Outbound())),
		pool:     sockutil.NewPool(cfg.Outbound()),
		highest:  -1,
	}
	go s.run()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// Close asks the loop to stop, wakes it out of select, and waits until it has closed every fd.
func (s *srv) Close() error {
	if s.BeginClose() {
		if err := s.waker.Wake(); err != nil {
			s.cfg.Log("select: %v", err)
		}
	}
	return s.Wait()
}
