//go:build linux

package selectmodel

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// fdSetSize is FD_SETSIZE: an fd_set is a fixed bitmap of 1024 bits, so select(2) can watch fds
// 0 to 1023 and nothing above. Setting the bit of a higher fd would write past the bitmap.
const fdSetSize = unix.FD_SETSIZE

// ceilingMessage is what a user reads when a socket lands past the fd_set: the limit and the way out.
const ceilingMessage = "select(2) cannot watch fd 1024 or above; use -model epoll"

// readBufferSize is the one read buffer the loop shares among all connections: every read lands
// in it and is written straight back, so a connection costs no buffer until its client stops
// reading. 64 KiB drains a loopback socket's typical burst in one read(2) per wakeup.
const readBufferSize = 64 << 10

// keepOutboundCap is the largest outbound buffer a connection keeps once it has drained. A
// bigger one (up to the outbound limit) is released, so a client that stalled once does not pin
// megabytes for the rest of its life; smaller ones are kept so that the usual small partial
// writes do not allocate each time.
const keepOutboundCap = 64 << 10

// acceptBatch bounds how many connections one wakeup accepts, so that a flood of new clients
// cannot starve the connections already being served; the rest wait in the backlog and select
// reports the listener readable again at once.
const acceptBatch = 128

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
	cfg  server.Config
	addr *net.TCPAddr

	// wakeMu guards wakeFD, the eventfd that Close writes to wake the loop out of select. The
	// loop closes it on the way out and sets it to -1, so Close never writes to a closed fd or,
	// worse, to a different file that reused its number.
	wakeMu sync.Mutex
	wakeFD int

	// Everything below is owned by the loop goroutine alone.
	listenFD int
	limit    int // outbound bound per connection, cfg.Outbound()
	readBuf  []byte
	conns    [fdSetSize]*conn // indexed by fd: every watched fd is below fdSetSize
	highest  int              // highest fd in conns, or -1

	acceptPausedUntil time.Time         // zero while the listener is watched
	acceptTrouble     sockutil.LogBurst // EMFILE and kin at accept; a burst ends at the next EAGAIN

	rejectsUnlogged int       // rejected since the last ceiling message
	rejectLoggedAt  time.Time // when the last ceiling message was logged
}

// conn is one client connection. Its outbound bytes are out[head:]: what the client sent and
// has not yet been able to take back.
type conn struct {
	fd       int
	out      []byte
	head     int
	peerDone bool // the client half-closed: send what is left, then close
}

func (c *conn) pending() int { return len(c.out) - c.head }

var available func() error // nil: select(2) is in every Linux kernel

// start binds the listener, creates the wake eventfd, and starts the loop on its own goroutine.
func start(cfg server.Config) (server.Server, error) {
	lfd, addr, err := sockutil.Listen(cfg.Addr, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if lfd >= fdSetSize {
		unix.Close(lfd)
		return nil, fmt.Errorf("select: listening socket on %s got fd %d: %s", cfg.Addr, lfd, ceilingMessage)
	}
	// An eventfd rather than a self-pipe: one fd, and a write that cannot fill up. It is watched
	// in the read set like any socket, so it must sit below the ceiling too.
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(lfd)
		return nil, fmt.Errorf("select: eventfd for the wakeup: %w", err)
	}
	if wfd >= fdSetSize {
		unix.Close(lfd)
		unix.Close(wfd)
		return nil, fmt.Errorf("select: wakeup eventfd got fd %d: %s", wfd, ceilingMessage)
	}
	s := &srv{
		cfg:      cfg,
		addr:     addr,
		wakeFD:   wfd,
		listenFD: lfd,
		limit:    cfg.Outbound(),
		readBuf:  make([]byte, min(readBufferSize, cfg.Outbound())),
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
		s.wake()
	}
	return s.Wait()
}

// wake makes the eventfd readable, so that a select blocked with no timeout returns.
func (s *srv) wake() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wakeFD < 0 {
		return // the loop has already exited
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	// The only failure an eventfd write can have is EAGAIN when its counter would overflow,
	// and BeginClose lets this run once, so the counter holds at most 1.
	for {
		if _, err := unix.Write(s.wakeFD, one[:]); err != unix.EINTR {
			return
		}
	}
}
