package selectmodel

import (
	"errors"
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
		if readable.IsSet(s.waker.FD()) {
			s.waker.Drain() // Close has been asked for, which run checks next
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
// Every connection is watched for readability while its outbound bound leaves room to read
// (backpressure, as sockutil.Pool states it) and its client has not half-closed; only connections
// with pending output are watched for writability, since an idle socket is almost always writable
// and would wake the loop for nothing.
func (s *srv) watch(readable, writable *unix.FdSet) int {
	readable.Set(s.waker.FD())
	nfd := s.waker.FD() + 1
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
		if !c.readClosed && c.outbound.Room() > 0 {
			readable.Set(fd)
		}
		if c.outbound.Len() > 0 {
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

// accept takes a batch of the connections waiting in the backlog.
func (s *srv) accept(now time.Time) error {
	n, err := sockutil.AcceptPending(s.listenFD, func(fd int) { s.open(now, fd) }, s.cfg.Log)
	switch {
	case err == nil:
		if n > 0 {
			s.acceptTrouble.End(s.cfg.Log, "select: accept works again")
		}
		return nil
	case sockutil.IsResourceShortage(err):
		// Out of fds or kernel memory. The connection stays in the backlog, so the listener
		// stays readable: leave it out of the read set for acceptPause instead of spinning.
		s.acceptPausedUntil = now.Add(acceptPause)
		s.acceptTrouble.Begin(s.cfg.Log, "select: %v; retrying every %v until a connection closes", err, acceptPause)
		return nil
	default:
		return err
	}
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

// open starts serving an accepted connection, or rejects it if select cannot watch its fd.
func (s *srv) open(now time.Time, fd int) {
	if fd >= fdSetSize {
		s.reject(now, fd)
		return
	}
	s.conns[fd] = &conn{fd: fd, outbound: s.pool.Outbound()}
	s.highest = max(s.highest, fd)
	s.Opened()
}

// read takes what select reported readable into the shared buffer and echoes it. It reads at most
// the room left under the outbound bound, so outbound bytes never exceed the limit.
func (s *srv) read(c *conn) {
	buf := s.readBuf[:min(len(s.readBuf), c.outbound.Room())]
	n, err := sockutil.ReadNonblock(c.fd, buf)
	switch {
	case errors.Is(err, unix.EAGAIN):
		return // the readiness was stale; select will report it again
	case err != nil:
		s.closeConn(c, err)
		return
	case n == 0:
		// The client half-closed (shutdown(SHUT_WR) or close). Send back what is left, then
		// close; flush closes it once the outbound is empty.
		c.readClosed = true
		if c.outbound.Len() == 0 {
			s.closeConn(c, nil)
		}
		return
	}
	s.Read(n)
	if !s.handler.Idle() {
		s.handler.Handle(buf[:n])
	}
	s.echo(c, buf[:n])
}

// echo sends p back. When nothing is queued it sends at once from the shared buffer, the usual
// case, which costs no copy in user space; whatever the socket does not take is queued.
func (s *srv) echo(c *conn, p []byte) {
	if c.outbound.Len() == 0 {
		n, ok := s.send(c, p)
		if !ok {
			return
		}
		p = p[n:]
	}
	c.outbound.Append(p)
}

// flush sends queued bytes to a connection that select reported writable, a chunk per send,
// until the socket takes less than a chunk: its send buffer is full, and select reports when it
// drains.
func (s *srv) flush(c *conn) {
	for c.outbound.Len() > 0 {
		p := c.outbound.Pending()
		n, ok := s.send(c, p)
		if !ok {
			return
		}
		c.outbound.Consume(n)
		if n < len(p) {
			return
		}
	}
	if c.readClosed {
		s.closeConn(c, nil) // half-closed client has everything back: end the connection
	}
}

// send sends p once and returns how much the socket took. One send is enough: on a non-blocking
// socket a short count means its send buffer is full, and the next would return EAGAIN. ok is
// false when the connection is gone and has been closed.
func (s *srv) send(c *conn, p []byte) (n int, ok bool) {
	n, err := sockutil.SendNonblock(c.fd, p)
	switch {
	case err == nil:
		s.Wrote(n)
		return n, true
	case errors.Is(err, unix.EAGAIN):
		return 0, true // the socket buffer is full: keep the bytes and watch for writability
	default:
		s.closeConn(c, err) // EPIPE or ECONNRESET: the client is gone, and so are its bytes
		return 0, false
	}
}

// closeConn ends a connection: its fd is closed and its slot freed for the fd number's next
// owner. A client that reset or went away is not logged; any other error is.
func (s *srv) closeConn(c *conn, err error) {
	if err != nil && !sockutil.IsPeerGone(err) {
		s.cfg.Log("select: closing fd %d: %v", c.fd, err)
	}
	unix.Close(c.fd)
	c.outbound.Release()
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
			s.closeConn(c, nil)
		}
	}
	unix.Close(s.listenFD)
	s.waker.Close()
	// Report rejections still under the rate limit, so the log's total matches the counter.
	if s.rejectsUnlogged > 0 {
		s.rejectLoggedAt = time.Time{}
		s.logRejects(time.Now(), -1)
	}
}
