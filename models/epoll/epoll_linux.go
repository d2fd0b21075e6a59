package epoll

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

const (
	// readBufferSize is what one read(2) may take. 64 KiB is the largest segment loopback TCP
	// hands over at once (GSO), and what gnet and most C servers use. There is one such buffer
	// per loop, not per connection, so its size costs nothing per connection.
	readBufferSize = 64 << 10

	// maxEvents is how many ready fds one epoll_wait returns. Under load a full batch amortises
	// the call over many connections; fds that did not fit stay ready and come back on the next
	// call, because registration is level-triggered.
	maxEvents = 256

	// acceptBatch bounds how many connections one listener event accepts, so a connect storm
	// cannot hold a loop away from its established connections, and new connections spread
	// over the loops instead of all landing on the first to wake. The rest of the backlog keeps
	// the listener ready, so the next epoll_wait reports it again.
	acceptBatch = 32

	// acceptBackoff is how long a loop stops accepting after EMFILE, ENFILE or ENOBUFS. These
	// errors last until some fd or memory is freed, and the listener stays readable all that
	// time: retrying at once would spin the loop. A connection closed by the loop itself ends
	// the pause early, since it has just freed an fd. Clients wait in the listen backlog.
	acceptBackoff = 50 * time.Millisecond

	// listenBacklog is the accept queue asked of listen(2). The kernel caps it at
	// net.core.somaxconn (4096 by default since Linux 5.4), so asking for more costs nothing.
	listenBacklog = 65535
)

// srv is a running epoll server: its listener(s), its loops, and its stop bookkeeping. Each loop
// closes its own connections as it leaves; the server closes the listeners and the loops' epoll
// fds and eventfds once every loop has left, since Close may still be writing to an eventfd.
type srv struct {
	server.Lifecycle
	cfg       server.Config
	addr      net.Addr
	listeners []int // one shared listener, or one SO_REUSEPORT listener per loop
	loops     []*loop
	running   sync.WaitGroup

	wakeMu     sync.Mutex // orders Close's wake-ups before the eventfds are closed
	wakeClosed bool
}

func available() error { return nil }

// Start listens on cfg.Addr and starts cfg.Loops event loops (default GOMAXPROCS).
func Start(cfg server.Config) (server.Server, error) {
	nloops := cfg.Loops
	if nloops <= 0 {
		nloops = runtime.GOMAXPROCS(0)
	}
	tcpAddr, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("epoll: resolve %q: %w", cfg.Addr, err)
	}
	s := &srv{cfg: cfg}
	if err := s.listen(tcpAddr, nloops); err != nil {
		s.closeFDs()
		return nil, err
	}
	for i := range nloops {
		listener := s.listeners[0]
		if cfg.ReusePort {
			listener = s.listeners[i]
		}
		l, err := newLoop(s, listener)
		if err != nil {
			s.closeFDs()
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	for _, l := range s.loops {
		s.running.Add(1)
		go l.run()
	}
	go func() {
		s.running.Wait()
		s.closeFDs()
		s.Stopped()
	}()
	return s, nil
}

// listen opens the listening socket, or with cfg.ReusePort one per loop on the same port.
func (s *srv) listen(addr *net.TCPAddr, nloops int) error {
	n := 1
	if s.cfg.ReusePort {
		n = nloops
	}
	for range n {
		fd, err := listenTCP(addr, s.cfg.ReusePort)
		if err != nil {
			return fmt.Errorf("epoll: listen on %s: %w", addr, err)
		}
		s.listeners = append(s.listeners, fd)
		if s.addr == nil {
			bound, err := localAddr(fd)
			if err != nil {
				return fmt.Errorf("epoll: getsockname of listener: %w", err)
			}
			s.addr = bound
			// Port 0 asked the kernel for a free port; the other SO_REUSEPORT listeners
			// must join that one.
			addr = bound
		}
	}
	return nil
}

func (s *srv) Addr() net.Addr { return s.addr }

// Stats adds up the loops' counters.
func (s *srv) Stats() server.Stats {
	var total server.Stats
	for _, l := range s.loops {
		total = total.Add(l.counts.Snapshot())
	}
	return total
}

// Close wakes every loop through its eventfd; each closes its connections and returns, and once
// all have, the listeners, epoll fds and eventfds are closed and Wait returns.
func (s *srv) Close() error {
	if s.BeginClose() {
		s.wakeAll()
	}
	return s.Wait()
}

// fail stops the server after a loop hit an error it cannot serve past.
func (s *srv) fail(err error) {
	if s.Fail(err) {
		s.wakeAll()
	}
}

func (s *srv) wakeAll() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wakeClosed {
		return
	}
	for _, l := range s.loops {
		if err := wake(l.wakeFD); err != nil {
			s.cfg.Log("epoll: waking a loop: %v", err)
		}
	}
}

// closeFDs closes what the server owns, once no loop runs (or none was started).
func (s *srv) closeFDs() {
	s.wakeMu.Lock()
	s.wakeClosed = true
	s.wakeMu.Unlock()
	for _, l := range s.loops {
		unix.Close(l.wakeFD)
		unix.Close(l.epfd)
	}
	for _, fd := range s.listeners {
		unix.Close(fd)
	}
}

// conn is one client connection, owned by one loop.
type conn struct {
	fd         int
	events     uint32 // the interest registered with epoll now
	readClosed bool   // the client shut down its sending side: flush, then close
	outbound   outbound
}

// loop is one event loop: an epoll instance, the thread that waits on it, and the connections
// registered with it. Nothing in it is shared with other loops except its counters, which
// Stats reads atomically, so the hot path takes no lock.
type loop struct {
	srv      *srv
	epfd     int
	wakeFD   int // an eventfd that Close writes to
	listenFD int // shared with the other loops unless cfg.ReusePort
	limit    int // cfg.Outbound(), the bound on each connection's outbound bytes
	resumeAt int // outbound bytes at or below which a connection that hit limit is read again

	events []unix.EpollEvent
	buf    []byte  // the loop's one read buffer
	conns  []*conn // indexed by fd; bounded by RLIMIT_NOFILE, since fds are the lowest free
	chunks chunkPool

	acceptPaused  bool
	acceptResume  time.Time
	acceptRetries int // failed accepts since the last success, to log a storm once

	counts server.Counters
}

func newLoop(s *srv, listenFD int) (*loop, error) {
	limit := s.cfg.Outbound()
	l := &loop{
		srv:      s,
		epfd:     -1,
		wakeFD:   -1,
		listenFD: listenFD,
		limit:    limit,
		// Reading resumes only once half the bound has drained, so a stalled reader costs two
		// epoll_ctl calls per half-limit of progress instead of two per write.
		resumeAt: limit / 2,
		events:   make([]unix.EpollEvent, maxEvents),
		buf:      make([]byte, readBufferSize),
	}
	// Until the loop is appended to s.loops, s.closeFDs cannot see it: close what we opened.
	fail := func(err error) (*loop, error) {
		if l.wakeFD >= 0 {
			unix.Close(l.wakeFD)
		}
		if l.epfd >= 0 {
			unix.Close(l.epfd)
		}
		return nil, err
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail(fmt.Errorf("epoll: epoll_create1: %w", err))
	}
	if l.wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail(fmt.Errorf("epoll: eventfd: %w", err))
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.wakeFD, unix.EPOLLIN); err != nil {
		return fail(fmt.Errorf("epoll: epoll_ctl add eventfd %d: %w", l.wakeFD, err))
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.listenFD, l.listenEvents()); err != nil {
		if errors.Is(err, unix.EINVAL) && !s.cfg.ReusePort {
			err = fmt.Errorf("%w (EPOLLEXCLUSIVE needs Linux 4.5 or later; -reuseport avoids it)", err)
		}
		return fail(fmt.Errorf("epoll: epoll_ctl add listener %d: %w", l.listenFD, err))
	}
	return l, nil
}

// listenEvents is the listener's registration. A listener shared by every loop is registered
// with EPOLLEXCLUSIVE, so a new connection wakes one waiting loop rather than all of them (the
// thundering herd); an SO_REUSEPORT listener belongs to one loop and needs no such flag.
func (l *loop) listenEvents() uint32 {
	if l.srv.cfg.ReusePort {
		return unix.EPOLLIN
	}
	return unix.EPOLLIN | unix.EPOLLEXCLUSIVE
}

// accept takes up to acceptBatch connections from the backlog and registers each with this loop.
func (l *loop) accept() {
	for range acceptBatch {
		fd, _, err := unix.Accept4(l.listenFD, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			return // the backlog is empty, or another loop took the connection
		case sockutil.IsAcceptRetryable(err):
			// A signal, or a client that reset or failed while it waited in the backlog
			// (ECONNABORTED, EPROTO, a firewall's EPERM): take the next one.
			continue
		case sockutil.IsResourceShortage(err):
			// EMFILE, ENFILE, ENOBUFS, ENOMEM: nothing to do but wait for resources to free.
			l.pauseAccept(err)
			return
		default:
			// EBADF, EINVAL and the like: the listener itself is broken and every retry would
			// fail the same way, so stop the server and say why.
			l.srv.fail(fmt.Errorf("epoll: accept4 on fd %d: %w", l.listenFD, err))
			return
		}
		if l.acceptRetries > 0 {
			l.srv.cfg.Log("epoll: accepting again after %d failed accepts", l.acceptRetries)
			l.acceptRetries = 0
		}
		l.open(fd)
	}
}

// open registers a freshly accepted connection for reading.
func (l *loop) open(fd int) {
	// The echo is written as soon as it is read; Nagle's algorithm would hold a small echo
	// back until the previous one is acknowledged. Go's net package sets this too.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		l.reject(fd, fmt.Errorf("setsockopt TCP_NODELAY on fd %d: %w", fd, err))
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
		l.reject(fd, fmt.Errorf("epoll_ctl add fd %d: %w", fd, err))
		return
	}
	if fd >= len(l.conns) {
		grown := make([]*conn, max(fd+1, 2*len(l.conns), 1024))
		copy(grown, l.conns)
		l.conns = grown
	}
	l.conns[fd] = &conn{fd: fd, events: unix.EPOLLIN}
	l.counts.Opened()
}

func (l *loop) reject(fd int, err error) {
	l.srv.cfg.Log("epoll: rejecting a connection: %v", err)
	unix.Close(fd)
	l.counts.Rejected()
}

// pauseAccept takes the listener out of this loop's epoll set for acceptBackoff. It stays
// readable while its backlog is non-empty, so level-triggered epoll would report it on every
// wait and the loop would spin on an accept that keeps failing.
func (l *loop) pauseAccept(err error) {
	if l.acceptRetries == 0 {
		l.srv.cfg.Log("epoll: accept: %v; pausing accept, clients wait in the backlog", err)
	}
	l.acceptRetries++
	if err := l.ctl(unix.EPOLL_CTL_DEL, l.listenFD, 0); err != nil {
		l.srv.fail(fmt.Errorf("epoll: epoll_ctl del listener %d: %w", l.listenFD, err))
		return
	}
	l.acceptPaused = true
	l.acceptResume = time.Now().Add(acceptBackoff)
}

func (l *loop) resumeAccept() {
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.listenFD, l.listenEvents()); err != nil {
		// Out of kernel memory for the registration: try again after another backoff.
		l.srv.cfg.Log("epoll: epoll_ctl add listener %d: %v", l.listenFD, err)
		l.acceptResume = time.Now().Add(acceptBackoff)
		return
	}
	l.acceptPaused = false
}

// waitTimeout is epoll_wait's timeout: forever, unless accepting is paused.
func (l *loop) waitTimeout() int {
	if !l.acceptPaused {
		return -1
	}
	return max(0, int(time.Until(l.acceptResume).Milliseconds())+1)
}

// wait returns the number of ready fds in l.events. After a batch, the next is often ready
// already, so a busy loop first polls without blocking, and blocks in epoll_wait only when that
// finds nothing. The difference is the Go runtime's, not the kernel's: a thread blocked in a
// syscall has its P taken away by sysmon, which wakes another thread to look for work, and the
// loop must get a P back when it returns; two context switches and a futex that a poll which
// does not block never pays.
func (l *loop) wait(busy bool) (int, error) {
	if busy {
		if n, err := pollEvents(l.epfd, l.events); n > 0 || (err != nil && err != unix.EINTR) {
			return n, err
		}
	}
	return unix.EpollWait(l.epfd, l.events, l.waitTimeout())
}

// run is the event loop. It runs on its own locked OS thread, so the thread that sleeps in
// epoll_wait is the one that reads and writes: no Go scheduler hop sits between an event and
// its handling, and a loop never migrates between threads.
func (l *loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.srv.running.Done()
	defer l.closeAll()
	busy := false
	for {
		n, err := l.wait(busy)
		busy = n > 0
		if err == unix.EINTR {
			continue // a signal arrived while we slept; nothing is lost, wait again
		}
		if err != nil {
			l.srv.fail(fmt.Errorf("epoll: epoll_wait on epfd %d: %w", l.epfd, err))
			return
		}
		for i := range n {
			ev := &l.events[i]
			switch fd := int(ev.Fd); {
			case fd == l.wakeFD:
				// Only Close writes the eventfd. It is not drained: this loop is leaving.
				if l.srv.IsClosing() {
					return
				}
			case fd == l.listenFD:
				l.accept()
			case fd < len(l.conns) && l.conns[fd] != nil:
				l.serve(l.conns[fd], ev.Events)
			default:
				// No connection has this fd. closeConn deregisters before it closes, so no
				// event can outlive its connection; were one to appear, it could not be
				// removed from here either (see closeConn), so it is ignored.
			}
		}
		if l.acceptPaused && !time.Now().Before(l.acceptResume) {
			l.resumeAccept()
		}
	}
}

// serve handles one readiness report for c. EPOLLERR and EPOLLHUP are reported whatever the
// interest; the read or write they wake up returns the error or EOF, which closes c.
func (l *loop) serve(c *conn, events uint32) {
	const (
		readable = unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP
		writable = unix.EPOLLOUT | unix.EPOLLERR | unix.EPOLLHUP
	)
	// Flush first: it makes room in outbound for the read, and an emptied outbound lets the
	// read's echo go straight out.
	if c.outbound.Len() > 0 && events&writable != 0 && !l.flush(c) {
		return
	}
	if c.events&unix.EPOLLIN != 0 && events&readable != 0 && !l.read(c) {
		return
	}
	l.rearm(c)
}

// read takes what the client sent, up to the room left in its outbound, and echoes it. It
// reports whether c is still open. One read per readiness report: level-triggered epoll reports
// c again if more is waiting, after the loop has served the other ready connections.
func (l *loop) read(c *conn) bool {
	room := l.limit - c.outbound.Len() // > 0, or EPOLLIN would not be armed
	n, err := sockutil.ReadNonblock(c.fd, l.buf[:min(len(l.buf), room)])
	switch {
	case err == unix.EAGAIN:
		return true // nothing after all (EPOLLERR/EPOLLHUP with no data); epoll will say when
	case err != nil:
		l.closeConn(c, err)
		return false
	case n == 0:
		// EOF: the client shut down its sending side. What it sent is echoed already or
		// queued; send the queue, then close.
		c.readClosed = true
		if c.outbound.Len() == 0 {
			l.closeConn(c, nil)
			return false
		}
		return true
	}
	l.counts.Read(n)
	return l.echo(c, l.buf[:n])
}

// echo writes p back to the client. Most echoes complete in that one write and touch no
// buffer. A partial write queues the rest in outbound, and rearm arms EPOLLOUT for it.
func (l *loop) echo(c *conn, p []byte) bool {
	if c.outbound.Len() > 0 {
		// Earlier bytes are still waiting for EPOLLOUT: these go behind them.
		l.queue(c, p)
		return true
	}
	n, err := sockutil.SendNonblock(c.fd, p)
	if err != nil && err != unix.EAGAIN {
		l.closeConn(c, err)
		return false
	}
	l.counts.Wrote(n)
	if n < len(p) {
		l.queue(c, p[n:])
	}
	return true
}

// flush writes as much of c's outbound as the kernel takes, a chunk per write, and stops at the
// first partial write: it means the socket's send buffer is full, and EPOLLOUT will report when
// it is not.
func (l *loop) flush(c *conn) bool {
	for c.outbound.Len() > 0 {
		p := c.outbound.Pending()
		n, err := sockutil.SendNonblock(c.fd, p)
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			l.closeConn(c, err)
			return false
		}
		l.counts.Wrote(n)
		c.outbound.Consume(n, &l.chunks)
		if n < len(p) {
			return true
		}
	}
	if c.readClosed {
		l.closeConn(c, nil)
		return false
	}
	return true
}

// queue appends p to c's outbound.
func (l *loop) queue(c *conn, p []byte) { c.outbound.Append(p, &l.chunks) }

// rearm brings c's epoll interest in line with its state, with one epoll_ctl when it changed
// and none in the common case (outbound empty, reading). EPOLLOUT is armed only while outbound
// is non-empty: level-triggered, an armed EPOLLOUT on a writable socket would be reported on
// every wait. EPOLLIN is dropped when outbound reaches the limit (backpressure: the client's
// bytes stay in the kernel, and TCP flow control stops the client) and comes back when outbound
// has drained to resumeAt.
func (l *loop) rearm(c *conn) {
	pending := c.outbound.Len()
	var want uint32
	if pending > 0 {
		want |= unix.EPOLLOUT
	}
	switch {
	case c.readClosed:
	case pending >= l.limit:
	case c.events&unix.EPOLLIN == 0 && pending > l.resumeAt:
	default:
		want |= unix.EPOLLIN
	}
	if want == c.events {
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_MOD, c.fd, want); err != nil {
		l.closeConn(c, fmt.Errorf("epoll_ctl mod fd %d: %w", c.fd, err))
		return
	}
	c.events = want
}

// closeConn closes c. A reset or broken pipe is the client's ordinary way to leave and is not
// logged; anything else is.
func (l *loop) closeConn(c *conn, err error) {
	if err != nil && !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.EPIPE) {
		l.srv.cfg.Log("epoll: closing fd %d: %v", c.fd, err)
	}
	// Deregister before closing. close(2) alone removes the socket from the epoll set only when
	// no other descriptor refers to it, and one may: if another goroutine forks (os/exec) just
	// then, the child holds a copy of the fd until it execs. The registration would survive the
	// close, and a level-triggered readable or hung-up socket would be reported on every wait,
	// spinning the loop, with no way to remove it afterwards: epoll_ctl finds the registration
	// through an fd that refers to the socket, and ours is gone (EPOLL_CTL_DEL on the number
	// would hit EBADF, or worse, the new connection that reuses it). Deleting first costs one
	// epoll_ctl per connection, and close then has no registration left to unhook: measured
	// over 1,000 loopback connections, close alone took 11 to 16 µs per socket and delete then
	// close 12 to 15 µs, a difference lost in the noise.
	if err := l.ctl(unix.EPOLL_CTL_DEL, c.fd, 0); err != nil {
		l.srv.cfg.Log("epoll: epoll_ctl del fd %d: %v", c.fd, err)
	}
	unix.Close(c.fd)
	l.conns[c.fd] = nil
	c.outbound.Release(&l.chunks)
	l.counts.Closed()
	if l.acceptPaused {
		// An fd just came free, so accept may succeed now.
		l.resumeAccept()
	}
}

// closeAll closes every connection of a loop that is stopping.
func (l *loop) closeAll() {
	l.acceptPaused = false // a stopping loop accepts nothing more
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c, nil)
		}
	}
}

// ctl registers, changes or removes fd's interest in this loop's epoll set.
func (l *loop) ctl(op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(l.epfd, op, fd, &ev)
}
