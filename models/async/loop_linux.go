//go:build !poll_opt

package async

import (
	"io"

	"github.com/panjf2000/gnet/v2"
)

// OnOpen runs on the connection's loop once gnet has accepted it and added it to that loop's epoll.
// It closes the connection at once if its fd is near RLIMIT_NOFILE: the kernel hands out the
// lowest free fd, so a high fd number means the table is nearly full, and the next accept(2)
// failing with EMFILE would make gnet stop the engine for every client. Shedding this one keeps
// accept working; the client sees its connection close.
func (s *srv) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if c.Fd() >= s.fdCeil {
		s.Rejected()
		s.cfg.Log("async: rejecting a connection: fd %d is too close to RLIMIT_NOFILE (raise ulimit -n)", c.Fd())
		c.SetContext(rejected{})
		return nil, gnet.Close
	}
	s.Opened()
	c.SetContext(&connState{})
	return nil, gnet.None
}

// OnTraffic runs on the loop after gnet has made one read(2) of up to readBufferCap bytes into the
// loop's shared buffer. It echoes them and, if the kernel would not take them all, stops reading
// this connection until gnet has sent the rest.
func (s *srv) OnTraffic(c gnet.Conn) gnet.Action {
	// Next(-1) takes everything gnet holds for c: a view of the loop's read buffer, no copy.
	// gnet's per-connection inbound ring stays empty because we always take everything.
	data, _ := c.Next(-1)
	s.Read(len(data))
	if !s.handler.Idle() {
		s.handler.Handle(data)
	}
	st := c.Context().(*connState)
	// Write tries write(2) at once and copies only what the kernel did not take into c's
	// outbound buffer, arming EPOLLOUT. An error (EPIPE, ECONNRESET) means gnet has already
	// closed the connection inside Write, and called OnClose, which settled the count.
	if _, err := c.Write(data); err != nil {
		return gnet.None
	}
	// BytesOut counts bytes written to the socket, not handed to gnet. Of the bytes queued last
	// time plus these, whatever gnet no longer holds has been written: by gnet's write handler
	// since the last OnTraffic (reading resumes only once it has drained the queue), or by the
	// write(2) inside Write just now.
	queued := c.OutboundBuffered()
	s.Wrote(st.queued + len(data) - queued)
	st.queued = queued
	if queued == 0 {
		return gnet.None
	}
	// The client's receive window and our send buffer are full. Reading on would grow gnet's
	// buffers without bound, and reading the client's FIN now would make gnet close the
	// connection and drop what is queued (eventloop.close flushes once, non-blocking). So stop
	// reading: gnet turns reading back on itself when its write drains the queue.
	if err := pauseReading(c); err != nil {
		s.cfg.Log("async: %v; closing the connection to keep its buffers bounded", err)
		return gnet.Close
	}
	return gnet.None
}

// OnClose runs for every connection OnOpen saw: on EOF, on an error, and when the engine stops.
// It counts the queued bytes gnet's write handler has written since the last OnTraffic, typically
// the last echoes of a half-closing client, whose FIN is read only once they are sent. What is
// still queued gets one non-blocking flush after OnClose returns (eventloop.close) that no handler
// sees, so BytesOut leaves out whatever that flush writes: at most one read's worth per connection
// that closes with echoes queued.
func (s *srv) OnClose(c gnet.Conn, err error) gnet.Action {
	st, served := c.Context().(*connState)
	if !served {
		return gnet.None // rejected by OnOpen
	}
	// gnet passes a bare io.EOF only when epoll reported an error or hangup without readiness; it
	// has then discarded the queue unwritten (outboundBuffer.Release), so nothing more was sent.
	// Every other path leaves the queue as it is, and OutboundBuffered is what is still unsent.
	if err != io.EOF {
		s.Wrote(st.queued - c.OutboundBuffered())
	}
	st.queued = 0
	s.Closed()
	return gnet.None
}
