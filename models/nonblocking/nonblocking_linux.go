package nonblocking

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// readBufferSize is the loop's one read buffer, shared by every connection because the loop
// serves one at a time. 64 KiB matches the loopback MTU and a socket buffer's typical quantum, so
// a bulk transfer costs few syscalls, and an idle connection costs no buffer at all.
const readBufferSize = 64 << 10

// acceptBatch bounds the connections accepted in one pass, so that a flood of new clients cannot
// keep the loop from reading and writing the ones it already has.
const acceptBatch = 64

// keepQueue is the largest outbound queue a connection keeps once it has drained. A client that
// fell behind once would otherwise pin its peak queue, up to the outbound limit, for as long as it
// stays connected.
const keepQueue = 64 << 10

func available() error { return nil }

type srv struct {
	server.Lifecycle
	server.Counters
	cfg   server.Config
	lfd   int
	addr  *net.TCPAddr
	limit int // the outbound limit: the most bytes queued toward one client

	// Everything below belongs to the loop's thread alone, so none of it is locked.
	readBuf       []byte
	conns         []*conn
	acceptTrouble sockutil.LogBurst
}

// conn is one client. Its outbound queue (the w_list of the classic busy-poll server) holds the
// echoed bytes the client's socket would not take yet: a write can fail with EAGAIN as surely as a
// read, and the loop cannot wait for it.
type conn struct {
	fd      int
	queue   []byte // queue[head:] is still to be sent; never longer than the outbound limit
	head    int
	readEOF bool // the client has shut down its sending side; close once the queue drains
}

// Start listens on cfg.Addr and serves every connection from one busy-polling thread.
func Start(cfg server.Config) (server.Server, error) {
	lfd, addr, err := sockutil.Listen(cfg.Addr, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("nonblocking: %w", err)
	}
	s := &srv{
		cfg:     cfg,
		lfd:     lfd,
		addr:    addr,
		limit:   cfg.Outbound(),
		readBuf: make([]byte, readBufferSize),
	}
	go s.run()
	return s, nil
}

func (s *srv) Addr() net.Addr { return s.addr }

func (s *srv) Stats() server.Stats { return s.Snapshot() }

// Close asks the loop to stop and returns once it has closed every fd and exited.
func (s *srv) Close() error {
	s.BeginClose()
	return s.Wait()
}

// run is the whole model: pass after pass, try to accept, try to read every connection, try to
// write every queue. Nothing in it blocks and nothing sleeps, so it uses a core whether or not
// there is work; the one check between passes is whether Close has been called.
func (s *srv) run() {
	defer s.Stopped()
	// The loop owns one OS thread for its whole life, as the C original does. It would keep a
	// thread busy anyway, since it never blocks; locking makes it always the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !s.IsClosing() {
		s.acceptPending()
		s.sweep(s.read)
		s.sweep(s.write)
	}
	s.closeAll()
}

// acceptPending accepts the clients queued on the listener, up to acceptBatch.
func (s *srv) acceptPending() {
	for range acceptBatch {
		fd, _, err := unix.Accept4(s.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN):
				// No client is waiting: the usual answer, a syscall spent for nothing.
				return
			case sockutil.IsAcceptRetryable(err):
				// A signal, or a client whose connection failed or reset while queued: try the
				// next one.
				continue
			case sockutil.IsResourceShortage(err):
				// Out of descriptors or memory until some connection closes. The next pass
				// retries, as the loop retries everything; the clients wait in the backlog.
				// Retrying costs no more than the rest of the loop, but logging every pass
				// would flood the log, so the burst is logged at a bounded rate.
				s.acceptTrouble.Begin(s.cfg.Log, "nonblocking: accept4 on fd %d: %v; retrying every pass while clients wait in the backlog", s.lfd, err)
				return
			default:
				s.Fail(fmt.Errorf("nonblocking: accept4 on fd %d: %w", s.lfd, err))
				return
			}
		}
		s.acceptTrouble.End(s.cfg.Log, "nonblocking: accept works again")
		// Small echoes go out at once instead of waiting for the previous segment's ACK
		// (Nagle's algorithm): Go's net package sets this on every TCP connection, so stdnet
		// does the same.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil && !sockutil.IsPeerGone(err) {
			s.cfg.Log("nonblocking: setsockopt TCP_NODELAY on fd %d: %v", fd, err)
		}
		s.conns = append(s.conns, &conn{fd: fd})
		s.Opened()
	}
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
// client: straight to its socket when nothing is queued ahead of it, into its queue otherwise.
func (s *srv) read(c *conn) (open bool) {
	if c.readEOF {
		return true
	}
	room := s.limit - c.queued()
	if room == 0 {
		// Backpressure: the client has not taken its echoes and its queue is full. Its bytes
		// stay in the kernel, whose receive window fills and stops the client from sending.
		return true
	}
	buf := s.readBuf[:min(len(s.readBuf), room)]
	n, err := sockutil.Read(c.fd, buf)
	switch {
	case errors.Is(err, unix.EAGAIN):
		// Nothing arrived since the last pass: for an idle connection, every pass.
		return true
	case err != nil:
		if !sockutil.IsPeerGone(err) {
			s.cfg.Log("nonblocking: read fd %d: %v", c.fd, err)
		}
		s.close(c)
		return false
	case n == 0:
		// The client shut down its sending side. What it sent is echoed or queued; the
		// connection closes once the queue is empty.
		c.readEOF = true
		if c.queued() == 0 {
			s.close(c)
			return false
		}
		return true
	}
	s.Read(n)
	data := buf[:n]
	if c.queued() == 0 {
		// Nothing is waiting ahead of these bytes, so try to send them now: in the usual case
		// they all go and the queue, and its copy, are never needed.
		sent, err := s.send(c.fd, data)
		if err != nil {
			if !sockutil.IsPeerGone(err) {
				s.cfg.Log("nonblocking: send on fd %d: %v", c.fd, err)
			}
			s.close(c)
			return false
		}
		data = data[sent:]
	}
	c.enqueue(data, s.limit)
	return true
}

// write tries one send of c's queue, if it has one, and closes c once a half-closed client has
// everything back.
func (s *srv) write(c *conn) (open bool) {
	if c.queued() > 0 {
		sent, err := s.send(c.fd, c.pending())
		if err != nil {
			if !sockutil.IsPeerGone(err) {
				s.cfg.Log("nonblocking: send on fd %d: %v", c.fd, err)
			}
			s.close(c)
			return false
		}
		c.consumed(sent)
	}
	if c.readEOF && c.queued() == 0 {
		s.close(c)
		return false
	}
	return true
}

// send is one sendmsg(2) of as much of p as the socket takes now; EAGAIN, a full socket buffer,
// is not an error but a send of 0 bytes. MSG_NOSIGNAL turns a write to a client that has gone
// into EPIPE rather than SIGPIPE: Go's runtime happens to ignore SIGPIPE on sockets, but the model
// should not rely on it.
func (s *srv) send(fd int, p []byte) (int, error) {
	for {
		n, err := unix.SendmsgN(fd, p, nil, nil, unix.MSG_NOSIGNAL)
		switch {
		case err == nil:
			s.Wrote(n)
			return n, nil
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return 0, err
		}
	}
}

func (c *conn) queued() int { return len(c.queue) - c.head }

func (c *conn) pending() []byte { return c.queue[c.head:] }

// enqueue appends p to the queue. The caller has made sure the result fits the outbound limit;
// the backing array never grows past it either.
func (c *conn) enqueue(p []byte, limit int) {
	if len(p) == 0 {
		return
	}
	need := c.queued() + len(p)
	if need > cap(c.queue)-c.head && c.head > 0 {
		// Slide the unsent bytes to the front before growing: what has been sent is free.
		n := copy(c.queue, c.pending())
		c.queue, c.head = c.queue[:n], 0
	}
	if need > cap(c.queue) {
		grown := make([]byte, len(c.queue), min(limit, max(2*cap(c.queue), need)))
		copy(grown, c.queue)
		c.queue = grown
	}
	c.queue = append(c.queue, p...)
}

// consumed drops the first n queued bytes, which the socket has taken.
func (c *conn) consumed(n int) {
	c.head += n
	if c.head < len(c.queue) {
		return
	}
	c.queue, c.head = c.queue[:0], 0
	if cap(c.queue) > keepQueue {
		c.queue = nil
	}
}

// close ends a connection. On Linux close(2) releases the fd even when it reports an error
// (EINTR included), so there is nothing to retry.
func (s *srv) close(c *conn) {
	unix.Close(c.fd)
	c.queue = nil
	s.Closed()
}

// closeAll is the loop's last act: it closes every connection, then the listener, and new clients
// are refused. Echoes still in a connection's queue here in user space are dropped with it. What
// the client sees of the rest depends on the server's receive queue, not on the client: if the
// client sent bytes the loop has not read yet, close(2) sends a reset (RFC 2525, section 2.17)
// and discards whatever was still in the kernel's send buffer; otherwise echoes already in the
// send buffer still go out, followed by a FIN.
func (s *srv) closeAll() {
	for _, c := range s.conns {
		s.close(c)
	}
	s.conns = nil
	if err := unix.Close(s.lfd); err != nil {
		s.Fail(fmt.Errorf("nonblocking: close listener fd %d: %w", s.lfd, err))
	}
}
