package blocking

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
)

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
	if err := sockutil.SetNoDelay(fd); err != nil {
		s.cfg.Log("blocking: %v", err)
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
		if !s.handler.Idle() {
			s.handler.Handle(buf[:n])
		}
		if err := s.writeAll(fd, buf[:n]); err != nil {
			if !sockutil.IsPeerGone(err) {
				s.cfg.Log("blocking: send on fd %d: %v", fd, err)
			}
			return
		}
	}
}

// writeAll blocks until every byte of p is in the socket's send buffer, through sockutil.Send
// (the runtime-aware sendto(2), since this thread sleeps in it).
func (s *srv) writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := sockutil.Send(fd, p)
		if err != nil {
			return err
		}
		// A blocking send returns short only when a signal interrupts it midway.
		s.Wrote(n)
		p = p[n:]
	}
	return nil
}

// closeConn is a connection's end, run by the thread that served it. The fd is closed under mu,
// so Close never shuts down an fd number that has been closed and handed to someone else.
func (s *srv) closeConn(fd int) {
	s.mu.Lock()
	delete(s.conns, fd)
	// close(2) is not retried; sockutil's package documentation says why.
	unix.Close(fd)
	s.mu.Unlock()
	s.Closed()
}
