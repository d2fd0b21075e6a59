package nonblocking

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
)

// run is the whole model: pass after pass, try to accept, try to read every connection, try to
// send every outbound. Nothing in it blocks, so it uses a core whether or not there is work; the
// one check between passes is whether Close has been called. With cfg.PollSleep, a pass that
// found nothing to do is followed by a sleep of that long (doc.go says what that makes of it).
func (s *srv) run() {
	defer s.Stopped()
	// The loop owns one OS thread for its whole life, as the C original does. It would keep a
	// thread busy anyway, since it never blocks; locking makes it always the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !s.IsClosing() {
		s.progressed = false
		s.accept()
		s.sweep(s.read)
		s.sweep(s.write)
		if !s.progressed && s.idleTimer != nil {
			s.sleepIdle()
		}
	}
	s.closeAll()
}

// sleepIdle is the pause after a pass that found nothing to do: cfg.PollSleep, or until Close,
// so that a long sleep does not hold Close up. The timer is made once, in Start, and reset for
// every sleep, so an idle pass allocates nothing.
func (s *srv) sleepIdle() {
	s.idleTimer.Reset(s.cfg.PollSleep)
	select {
	case <-s.idleTimer.C:
	case <-s.Closing():
	}
}

// accept takes the clients queued on the listener, a batch per pass.
func (s *srv) accept() {
	n, err := sockutil.AcceptPending(s.lfd, s.open, s.cfg.Log)
	switch {
	case err == nil:
		if n > 0 {
			s.progressed = true
			s.acceptTrouble.End(s.cfg.Log, "nonblocking: accept works again")
		}
	case sockutil.IsResourceShortage(err):
		// Out of descriptors or memory until some connection closes. The next pass retries, as
		// the loop retries everything; the clients wait in the backlog. Retrying costs no more
		// than the rest of the loop, but logging every pass would flood the log, so the burst
		// is logged at a bounded rate.
		s.acceptTrouble.Begin(s.cfg.Log, "nonblocking: %v; retrying every pass while clients wait in the backlog", err)
	default:
		s.Fail(fmt.Errorf("nonblocking: %w", err))
	}
}

// open starts serving an accepted connection.
func (s *srv) open(fd int) {
	s.conns = append(s.conns, &conn{fd: fd, outbound: s.pool.Outbound()})
	s.Opened()
}

// sweep calls serve on every connection and keeps those it reports still open, in order.
func (s *srv) sweep(serve func(*conn) (open bool)) {
	open := s.conns[:0]
	for _, c := range s.conns {
		if serve(c) {
			open = append(open, c)
		}
	}
	clear(s.conns[len(open):]) // let the closed connections be collected
	s.conns = open
}

// read tries one read(2) on c into the shared buffer and passes what arrived on toward the
// client: straight to its socket when nothing is queued ahead of it, into its outbound otherwise.
func (s *srv) read(c *conn) (open bool) {
	if c.readClosed {
		return true
	}
	room := c.outbound.Room()
	if room == 0 {
		// Backpressure: the client has not taken its echoes (sockutil.Pool states the rule).
		return true
	}
	buf := s.readBuf[:min(len(s.readBuf), room)]
	n, err := sockutil.ReadNonblock(c.fd, buf)
	switch {
	case errors.Is(err, unix.EAGAIN):
		// Nothing arrived since the last pass: for an idle connection, every pass.
		return true
	case err != nil:
		s.closeConn(c, err)
		return false
	case n == 0:
		// The client shut down its sending side. What it sent is echoed or queued; the
		// connection closes once the outbound is empty.
		c.readClosed = true
		if c.outbound.Len() == 0 {
			s.closeConn(c, nil)
			return false
		}
		return true
	}
	s.Read(n)
	s.progressed = true
	data := buf[:n]
	if !s.handler.Idle() {
		s.handler.Handle(data)
	}
	if c.outbound.Len() == 0 {
		// Nothing is waiting ahead of these bytes, so try to send them now: in the usual case
		// they all go and the outbound, and its copy, are never needed.
		sent, err := s.send(c.fd, data)
		if err != nil {
			s.closeConn(c, err)
			return false
		}
		data = data[sent:]
	}
	c.outbound.Append(data)
	return true
}

// write tries one send of c's outbound, if it has one, and closes c once a half-closed client has
// everything back.
func (s *srv) write(c *conn) (open bool) {
	if c.outbound.Len() > 0 {
		sent, err := s.send(c.fd, c.outbound.Pending())
		if err != nil {
			s.closeConn(c, err)
			return false
		}
		c.outbound.Consume(sent)
	}
	if c.readClosed && c.outbound.Len() == 0 {
		s.closeConn(c, nil)
		return false
	}
	return true
}

// send is one sendto(2) of as much of p as the socket takes now; EAGAIN, a full socket buffer,
// is not an error but a send of 0 bytes.
func (s *srv) send(fd int, p []byte) (int, error) {
	n, err := sockutil.SendNonblock(fd, p)
	if errors.Is(err, unix.EAGAIN) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s.Wrote(n)
	s.progressed = true
	return n, nil
}

// closeConn ends a connection. A client that reset or went away is the ordinary end of many
// connections and is not logged; any other error is. close(2) is not retried; sockutil's package
// documentation says why.
func (s *srv) closeConn(c *conn, err error) {
	if err != nil && !sockutil.IsPeerGone(err) {
		s.cfg.Log("nonblocking: closing fd %d: %v", c.fd, err)
	}
	unix.Close(c.fd)
	c.outbound.Release()
	s.Closed()
	s.progressed = true
}

// closeAll is the loop's last act: it closes every connection, then the listener, and new clients
// are refused. Echoes still in a connection's outbound here in user space are dropped with it.
// What the client sees of the rest depends on the server's receive queue, not on the client: if
// the client sent bytes the loop has not read yet, close(2) sends a reset (RFC 2525, section
// 2.17) and discards whatever was still in the kernel's send buffer; otherwise echoes already in
// the send buffer still go out, followed by a FIN.
func (s *srv) closeAll() {
	for _, c := range s.conns {
		s.closeConn(c, nil)
	}
	s.conns = nil
	if err := unix.Close(s.lfd); err != nil {
		s.Fail(fmt.Errorf("nonblocking: close listener fd %d: %w", s.lfd, err))
	}
}
