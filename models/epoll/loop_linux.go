package epoll

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

const (
	// maxEvents is how many ready fds one epoll_wait returns. Under load a full batch amortises
	// the call over many connections; fds that did not fit stay ready and come back on the next
	// call, because registration is level-triggered.
	maxEvents = 256

	// acceptBackoff is how long a loop stops accepting after EMFILE, ENFILE or ENOBUFS. These
	// errors last until some fd or memory is freed, and the listener stays readable all that
	// time: retrying at once would spin the loop. A connection closed by the loop itself ends
	// the pause early, since it has just freed an fd. Clients wait in the listen backlog.
	acceptBackoff = 50 * time.Millisecond

	// heldWait, in milliseconds, is how long a loop waits for events while keeping its P
	// before it falls back to a wait that gives the P up. A loop that is serving traffic is
	// woken well within it, so it never pays the runtime's hand-off; an idle one hands its P
	// back after this long, so the process's other goroutines need not wait for sysmon to
	// preempt it. It is no shorter than sysmon's preemption interval (10 ms) because the timer
	// of a shorter wait is usually the CPU's next timer event, which the kernel then
	// reprograms at every wait: a cost the C server, which waits without a timeout, never pays.
	heldWait = 10
)

// conn is one client connection, owned by one loop.
type conn struct {
	fd         int
	events     uint32 // the interest registered with epoll now
	readClosed bool   // the client shut down its sending side: flush, then close
	outbound   sockutil.Outbound
}

// loop is one event loop: an epoll instance, the thread that waits on it, and the connections
// registered with it. Nothing in it is shared with other loops except its counters, which
// Stats reads atomically, and its waker, which Close writes, so the hot path takes no lock.
type loop struct {
	srv      *srv
	epfd     int
	waker    *sockutil.Waker
	listenFD int // shared with the other loops unless cfg.ReusePort

	events []unix.EpollEvent
	buf    []byte  // the loop's one read buffer
	conns  []*conn // indexed by fd; bounded by RLIMIT_NOFILE, since fds are the lowest free
	pool   *sockutil.Pool

	acceptPaused  bool
	acceptResume  time.Time
	acceptRetries int // failed accepts since the last success, to log a storm once

	counts server.Counters
}

func newLoop(s *srv, listenFD int) (*loop, error) {
	l := &loop{
		srv:      s,
		epfd:     -1,
		listenFD: listenFD,
		events:   make([]unix.EpollEvent, maxEvents),
		buf:      make([]byte, sockutil.ReadBuffer(s.cfg.Outbound())),
		pool:     sockutil.NewPool(s.cfg.Outbound()),
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: epoll_create1: %w", err)
	}
	// Until the loop is appended to s.loops, s.closeFDs cannot see it: close what we opened.
	fail := func(err error) (*loop, error) {
		l.close()
		return nil, err
	}
	if l.waker, err = sockutil.NewWaker(); err != nil {
		return fail(fmt.Errorf("epoll: %w", err))
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.waker.FD(), unix.EPOLLIN); err != nil {
		return fail(fmt.Errorf("epoll: epoll_ctl add eventfd %d: %w", l.waker.FD(), err))
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, l.listenFD, l.listenEvents()); err != nil {
		if errors.Is(err, unix.EINVAL) && !s.cfg.ReusePort {
			err = fmt.Errorf("%w (EPOLLEXCLUSIVE needs Linux 4.5 or later; -reuseport avoids it)", err)
		}
		return fail(fmt.Errorf("epoll: epoll_ctl add listener %d: %w", l.listenFD, err))
	}
	return l, nil
}

// close closes the loop's epoll fd and waker, once its thread has returned.
func (l *loop) close() {
	if l.waker != nil {
		l.waker.Close()
	}
	unix.Close(l.epfd)
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

// accept takes a batch of connections from the backlog and registers each with this loop.
func (l *loop) accept() {
	n, err := sockutil.AcceptPending(l.listenFD, l.open, l.srv.cfg.Log)
	if n > 0 && l.acceptRetries > 0 {
		l.srv.cfg.Log("epoll: accepting again after %d failed accepts", l.acceptRetries)
		l.acceptRetries = 0
	}
	switch {
	case err == nil:
	case sockutil.IsResourceShortage(err):
		// EMFILE, ENFILE, ENOBUFS, ENOMEM: nothing to do but wait for resources to free.
		l.pauseAccept(err)
	default:
		// EBADF, EINVAL and the like: the listener itself is broken and every retry would
		// fail the same way, so stop the server and say why.
		l.srv.fail(fmt.Errorf("epoll: %w", err))
	}
}

// open registers a freshly accepted connection for reading.
func (l *loop) open(fd int) {
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
		l.reject(fd, fmt.Errorf("epoll_ctl add fd %d: %w", fd, err))
		return
	}
	if fd >= len(l.conns) {
		grown := make([]*conn, max(fd+1, 2*len(l.conns), 1024))
		copy(grown, l.conns)
		l.conns = grown
	}
	l.conns[fd] = &conn{fd: fd, events: unix.EPOLLIN, outbound: l.pool.Outbound()}
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

// waitTimeout is epoll_wait's timeout in milliseconds: forever (-1), unless accepting is paused.
func (l *loop) waitTimeout() int {
	if !l.acceptPaused {
		return -1
	}
	return max(0, int(time.Until(l.acceptResume).Milliseconds())+1)
}

// wait returns the number of ready fds in l.events. It first waits up to heldWait in a raw
// epoll_wait that keeps the loop's P, and only if nothing arrived in that time in the
// runtime's epoll_wait, which gives the P up while the loop sleeps. doc.go says what each costs
// and what holding the P means for the process's other goroutines.
func (l *loop) wait() (int, error) {
	timeout := l.waitTimeout()
	held := heldWait
	if timeout >= 0 && timeout < held {
		held = timeout
	}
	n, err := waitHoldingP(l.epfd, l.events, held)
	if n > 0 || err != nil || held == timeout {
		return n, err
	}
	return unix.EpollWait(l.epfd, l.events, l.waitTimeout())
}

// waitHoldingP is epoll_wait with a timeout in milliseconds, made as a raw syscall: the runtime
// does not know the thread is in the kernel, so sysmon neither takes its P nor wakes another
// thread to run it, and the loop comes back from the wait with its P in hand. It is made as
// epoll_pwait with no signal mask, which every Linux architecture has, through the syscall
// package as sockutil's raw calls are (its package documentation says why).
func waitHoldingP(epfd int, events []unix.EpollEvent, timeoutMillis int) (int, error) {
	n, _, errno := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(timeoutMillis), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// run is the event loop. It runs on its own locked OS thread, so the thread that sleeps in
// epoll_wait is the one that reads and writes: no Go scheduler hop sits between an event and
// its handling, and a loop never migrates between threads.
func (l *loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.srv.running.Done()
	defer l.closeAll()
	for {
		n, err := l.wait()
		if err == unix.EINTR {
			// A signal arrived while we slept; nothing is lost, wait again. The runtime's
			// preemption requests come this way during a held wait, and the call to wait
			// is where the loop yields to them.
			continue
		}
		if err != nil {
			l.srv.fail(fmt.Errorf("epoll: epoll_wait on epfd %d: %w", l.epfd, err))
			return
		}
		for i := range n {
			ev := &l.events[i]
			switch fd := int(ev.Fd); {
			case fd == l.waker.FD():
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
	room := c.outbound.Room() // > 0, or EPOLLIN would not be armed
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
	if !l.srv.handler.Idle() {
		l.srv.handler.Handle(l.buf[:n])
	}
	return l.echo(c, l.buf[:n])
}

// echo writes p back to the client. Most echoes complete in that one write and touch no
// buffer. A partial write queues the rest in outbound, and rearm arms EPOLLOUT for it.
func (l *loop) echo(c *conn, p []byte) bool {
	if c.outbound.Len() > 0 {
		// Earlier bytes are still waiting for EPOLLOUT: these go behind them.
		c.outbound.Append(p)
		return true
	}
	n, err := sockutil.SendNonblock(c.fd, p)
	if err != nil && err != unix.EAGAIN {
		l.closeConn(c, err)
		return false
	}
	l.counts.Wrote(n)
	if n < len(p) {
		c.outbound.Append(p[n:])
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
		c.outbound.Consume(n)
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

// rearm brings c's epoll interest in line with its state, with one epoll_ctl when it changed
// and none in the common case (outbound empty, reading). EPOLLOUT is armed only while outbound
// is non-empty: level-triggered, an armed EPOLLOUT on a writable socket would be reported on
// every wait. EPOLLIN is armed while the outbound bound leaves room to read (sockutil.Pool
// states the rule).
func (l *loop) rearm(c *conn) {
	var want uint32
	if c.outbound.Len() > 0 {
		want |= unix.EPOLLOUT
	}
	if !c.readClosed && c.outbound.Room() > 0 {
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
	if err != nil && !sockutil.IsPeerGone(err) {
		l.srv.cfg.Log("epoll: closing fd %d: %v", c.fd, err)
	}
	// Deregister before closing. close(2) alone removes the socket from the epoll set only when
	// no other descriptor refers to it, and one may: if another goroutine forks (os/exec) just
	// then, the child holds a copy of the fd until it execs. The registration would survive the
	// close, and a level-triggered readable or hung-up socket would be reported on every wait,
	// spinning the loop, with no way to remove it afterwards: epoll_ctl finds the registration
	// through an fd that refers to the socket, and ours is gone (EPOLL_CTL_DEL on the number
	// would hit EBADF, or worse, the new connection that reuses it). Deleting first costs one
	// epoll_ctl per connection, and close then has no registration left to unhook.
	if err := l.ctl(unix.EPOLL_CTL_DEL, c.fd, 0); err != nil {
		l.srv.cfg.Log("epoll: epoll_ctl del fd %d: %v", c.fd, err)
	}
	unix.Close(c.fd)
	l.conns[c.fd] = nil
	c.outbound.Release()
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
