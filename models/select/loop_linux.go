//go:build linux

package selectmodel

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
)

// run is the event loop: one goroutine locked to one OS thread, as a C select server is one
// thread. Every iteration rebuilds the fd_sets, waits in select, and serves what is ready.
func (s *srv) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.Stopped()
	defer s.teardown()
	for !s.IsClosing() {
		if err := s.serveOnce(); err != nil {
			s.Fail(fmt.Errorf("select: %w", err))
			return
		}
	}
}

// serveOnce is one turn of the loop: wait in select, then accept, read and write what it reported.
func (s *srv) serveOnce() error {
	var readable, writable unix.FdSet
	nfd := s.watch(&readable, &writable)
	n, err := unix.Select(nfd, &readable, &writable, nil, s.timeout())
	if err == unix.EINTR {
		return nil // a signal reached this thread: rebuild the sets and wait again
	}
	if err != nil {
		return fmt.Errorf("select on fds below %d: %w", nfd, err)
	}
	now := time.Now()
	if n > 0 {
		if readable.IsSet(s.wakeFD) {
			s.drainWake()
		}
		if readable.IsSet(s.listenFD) {
			if err := s.accept(now); err != nil {
				return err
			}
		}
		// The scan is select's other O(highest fd) cost: the kernel said how many fds are
		// ready, not which, so every watched fd's bits are tested. Connections accepted just
		// above have no bit set this turn, so the scan passes them over.
		for fd := 0; fd < nfd; fd++ {
			c := s.conns[fd]
			if c == nil {
				continue
			}
			if readable.IsSet(fd) {
				s.read(c)
			}
			if s.conns[fd] == c && writable.IsSet(fd) {
				s.flush(c)
			}
		}
	}
	s.logRejects(now, -1)
	return nil
}

// watch fills the fd_sets for this turn and returns select's nfds, one past the highest fd set.
// Every connection is watched for readability until its outbound buffer reaches the limit
// (backpressure: its client is not reading, so we stop reading it and TCP flow control stalls
// the writer) or its client half-closes; only connections with pending output are watched for
// writability, since an idle socket is almost always writable and would wake the loop for nothing.
func (s *srv) watch(readable, writable *unix.FdSet) int {
	readable.Set(s.wakeFD)
	nfd := s.wakeFD + 1
	if s.acceptPausedUntil.IsZero() || !time.Now().Before(s.acceptPausedUntil) {
		s.acceptPausedUntil = time.Time{}
		readable.Set(s.listenFD)
		nfd = max(nfd, s.listenFD+1)
	}
	for fd := 0; fd <= s.highest; fd++ {
		c := s.conns[fd]
		if c == nil {
			continue
		}
		if !c.peerDone && c.pending() < s.limit {
			readable.Set(fd)
		}
		if c.pending() > 0 {
			writable.Set(fd)
		}
	}
	return max(nfd, s.highest+1)
}

// timeout is how long select may block: until the listener is due back in the read set, or the
// next rate-limited ceiling message is due, or (nil) until an fd is ready or Close wakes us.
func (s *srv) timeout() *unix.Timeval {
	var due time.Time
	if !s.acceptPausedUntil.IsZero() {
		due = s.acceptPausedUntil
	}
	if s.rejectsUnlogged > 0 {
		if t := s.rejectLoggedAt.Add(rejectLogInterval); due.IsZero() || t.Before(due) {
			due = t
		}
	}
	if due.IsZero() {
		return nil
	}
	tv := unix.NsecToTimeval(max(time.Until(due), 0).Nanoseconds())
	return &tv
}

// drainWake resets the eventfd. Close has been asked for, which run checks next.
func (s *srv) drainWake() {
	var b [8]byte
	for {
		// EAGAIN means another turn drained it already; nothing else can fail on an eventfd.
		if _, err := unix.Read(s.wakeFD, b[:]); err != unix.EINTR {
			return
		}
	}
}

// accept takes the connections waiting in the backlog, up to acceptBatch per turn.
func (s *srv) accept(now time.Time) error {
	for i := 0; i < acceptBatch; i++ {
		fd, _, err := unix.Accept4(s.listenFD, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			// The backlog is empty and an fd was free to take it: any accept error burst is over.
			// The kernel takes the fd before it looks at the backlog, so a full fd table fails
			// every accept, even the one after the last waiting client, and an accept that
			// succeeds between two failures does not end the burst. Only EAGAIN does, so a
			// server that stays at its fd limit logs one burst, not one per connection closed.
			s.acceptTrouble.End(s.cfg.Log, "select: accept works again")
			return nil
		case sockutil.IsAcceptRetryable(err):
			// A signal, or a client whose connection failed or reset while queued (accept(2)
			// reports such a handshake's error, ECONNABORTED, EPROTO, EHOSTUNREACH and the like,
			// to the caller): the listener is fine, so take the next one.
			continue
		case sockutil.IsResourceShortage(err):
			// Out of fds or kernel memory. The connection stays in the backlog, so the listener
			// stays readable: leave it out of the read set for acceptPause instead of spinning.
			s.acceptPausedUntil = now.Add(acceptPause)
			s.acceptTrouble.Begin(s.cfg.Log, "select: accept on fd %d: %v; retrying every %v until a connection closes", s.listenFD, err, acceptPause)
			return nil
		default:
			return fmt.Errorf("accept on fd %d: %w", s.listenFD, err)
		}
		if fd >= fdSetSize {
			s.reject(now, fd)
			continue
		}
		s.open(fd)
	}
	return nil
}

// reject closes a connection whose fd select cannot watch. Putting it into an fd_set would write
// past the 1024-bit bitmap; serving it some other way would no longer be the select model.
func (s *srv) reject(now time.Time, fd int) {
	unix.Close(fd)
	s.Rejected()
	s.rejectsUnlogged++
	s.logRejects(now, fd)
}

// logRejects logs the ceiling message for a rejection on fd, or (fd < 0) for the rejections not
// yet reported, at most once per rejectLogInterval.
func (s *srv) logRejects(now time.Time, fd int) {
	if s.rejectsUnlogged == 0 || now.Sub(s.rejectLoggedAt) < rejectLogInterval {
		return
	}
	total := s.Snapshot().Rejected
	switch {
	case fd < 0:
		s.cfg.Log("select: closed %d more new connections: %s (%d rejected in all)", s.rejectsUnlogged, ceilingMessage, total)
	case uint64(s.rejectsUnlogged) == total:
		s.cfg.Log("select: closed a new connection on fd %d: %s (%d rejected in all)", fd, ceilingMessage, total)
	default:
		s.cfg.Log("select: closed a new connection on fd %d: %s (%d rejected since the last message, %d in all)", fd, ceilingMessage, s.rejectsUnlogged, total)
	}
	s.rejectsUnlogged = 0
	s.rejectLoggedAt = now
}

// open starts serving an accepted connection.
func (s *srv) open(fd int) {
	// TCP_NODELAY, as Go's net package sets it, so that models compare on their IO and not on
	// Nagle's algorithm. A failure (the client already reset) shows up at the first read.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	s.conns[fd] = &conn{fd: fd}
	s.highest = max(s.highest, fd)
	s.Opened()
}

// read takes what select reported readable into the shared buffer and echoes it. It reads at most
// the room left under the outbound limit, so pending bytes never exceed the limit.
func (s *srv) read(c *conn) {
	buf := s.readBuf[:min(len(s.readBuf), s.limit-c.pending())]
	for {
		n, err := unix.Read(c.fd, buf)
		switch err {
		case nil:
		case unix.EINTR:
			continue // a signal interrupted the copy: read again
		case unix.EAGAIN:
			return // the readiness was stale; select will report it again
		default:
			s.close(c) // ECONNRESET or worse: the client is gone
			return
		}
		if n == 0 {
			// The client half-closed (shutdown(SHUT_WR) or close). Send back what is left, then
			// close; flush closes it once pending reaches zero.
			c.peerDone = true
			if c.pending() == 0 {
				s.close(c)
			}
			return
		}
		s.Read(n)
		s.echo(c, buf[:n])
		return
	}
}

// echo sends p back. When nothing is queued it writes at once from the shared buffer, the usual
// case, which costs no copy in user space; whatever the socket does not take is queued.
func (s *srv) echo(c *conn, p []byte) {
	if c.pending() == 0 {
		n, ok := s.send(c, p)
		if !ok {
			return
		}
		p = p[n:]
	}
	c.queue(p, s.limit)
}

// flush writes queued bytes to a connection that select reported writable.
func (s *srv) flush(c *conn) {
	n, ok := s.send(c, c.out[c.head:])
	if !ok {
		return
	}
	c.head += n
	if c.pending() > 0 {
		return // the socket buffer is full again; select reports when it drains
	}
	if cap(c.out) > keepOutboundCap {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	c.head = 0
	if c.peerDone {
		s.close(c) // half-closed client has everything back: end the connection
	}
}

// send writes p once and returns how much the socket took. One write is enough: on a non-blocking
// socket a short count means its send buffer is full, and the next write would return EAGAIN.
// ok is false when the connection is gone and has been closed.
func (s *srv) send(c *conn, p []byte) (n int, ok bool) {
	for {
		// write(2) to a socket the client has reset raises SIGPIPE; the Go runtime ignores
		// SIGPIPE for fds other than stdout and stderr, so the write just returns EPIPE.
		n, err := unix.Write(c.fd, p)
		switch err {
		case nil:
			s.Wrote(n)
			return n, true
		case unix.EINTR:
			continue // a signal interrupted the copy: write again
		case unix.EAGAIN:
			return 0, true // the socket buffer is full: keep the bytes and watch for writability
		default:
			s.close(c) // EPIPE or ECONNRESET: the client is gone, and so are its pending bytes
			return 0, false
		}
	}
}

// queue appends p to the connection's outbound bytes. The caller guarantees that pending bytes
// plus p stay within limit, and the buffer never grows past limit.
func (c *conn) queue(p []byte, limit int) {
	if len(p) == 0 {
		return
	}
	if c.head > 0 && len(c.out)+len(p) > cap(c.out) {
		// Slide the unsent bytes to the front before growing, so the buffer's size follows the
		// pending bytes rather than every byte ever queued.
		n := copy(c.out, c.out[c.head:])
		c.out, c.head = c.out[:n], 0
	}
	if need := len(c.out) + len(p); need > cap(c.out) {
		grown := make([]byte, len(c.out), min(max(need, 2*cap(c.out)), limit))
		copy(grown, c.out)
		c.out = grown
	}
	c.out = append(c.out, p...)
}

// close ends a connection: its fd is closed and its slot freed for the fd number's next owner.
func (s *srv) close(c *conn) {
	unix.Close(c.fd)
	s.conns[c.fd] = nil
	for s.highest >= 0 && s.conns[s.highest] == nil {
		s.highest--
	}
	s.Closed()
}

// teardown closes every fd the loop owns, on the way out of run.
func (s *srv) teardown() {
	for fd := 0; fd <= s.highest; fd++ {
		if c := s.conns[fd]; c != nil {
			s.close(c)
		}
	}
	unix.Close(s.listenFD)
	s.wakeMu.Lock()
	unix.Close(s.wakeFD)
	s.wakeFD = -1
	s.wakeMu.Unlock()
	// Report rejections still under the rate limit, so the log's total matches the counter.
	if s.rejectsUnlogged > 0 {
		s.rejectLoggedAt = time.Time{}
		s.logRejects(time.Now(), -1)
	}
}
