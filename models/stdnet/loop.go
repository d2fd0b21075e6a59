package stdnet

import (
	"errors"
	"fmt"
	"net"
	"time"

	"echobench/internal/sockutil"
)

func (s *srv) acceptLoop() {
	defer s.wg.Done()
	retries := 0 // failed accepts in the current burst, so a burst is logged once, not per retry
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.IsClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Accept in package net already retries EINTR and ECONNABORTED. Running out of
			// fds or kernel memory is temporary: wait and try again, as net/http does, while
			// the listener's backlog holds the waiting clients. Anything else will not go
			// away by retrying, so the server stops and says why.
			if !retryable(err) {
				s.Fail(fmt.Errorf("stdnet: accept on %s: %w", s.ln.Addr(), err))
				s.ln.Close()
				s.closeConns()
				return
			}
			if retries == 0 {
				s.cfg.Log("stdnet: accept: %v; retrying every %v until connections close", err, acceptBackoff)
			}
			retries++
			select {
			case <-s.Closing():
				return
			case <-time.After(acceptBackoff):
			}
			continue
		}
		if retries > 0 {
			s.cfg.Log("stdnet: accepting again after %d failed attempts", retries)
			retries = 0
		}
		s.mu.Lock()
		if s.IsClosing() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.Opened()
		go s.serve(c)
	}
}

// serve echoes one connection. The outbound side needs no queue: Write returns only when every
// byte is in the kernel, and until then this goroutine does not read, so a client that stops
// reading stops being read from (backpressure by blocking), and the server holds at most one
// buffer for it.
func (s *srv) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.Closed()
	}()
	buf := make([]byte, sockutil.ReadBuffer(s.cfg.Outbound()))
	for {
		n, rerr := c.Read(buf)
		if n > 0 {
			s.Read(n)
			if !s.handler.Idle() {
				s.handler.Handle(buf[:n])
			}
			w, werr := c.Write(buf[:n])
			s.Wrote(w)
			if werr != nil {
				return // EPIPE or ECONNRESET: the client is gone
			}
		}
		if rerr != nil {
			// io.EOF is the client's half-close: everything it sent has been echoed, so
			// closing now is the clean end. Any other error is a reset or a Close.
			return
		}
	}
}
