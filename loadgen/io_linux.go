package loadgen

// Send, read, close: queueing and writing a connection's messages, reading and checking its
// echoes, recording their completions, and closing it.

import (
	"errors"
	"time"

	"echobench/internal/sockutil"

	"golang.org/x/sys/unix"
)

// canQueue reports whether c may queue another message now.
func (w *worker) canQueue(c *conn) bool {
	cfg := &w.sh.cfg
	return c.state == stateOpen && !w.stopping && c.count < cfg.Pipeline &&
		(cfg.Reconnect == 0 || c.msgIndex < uint64(cfg.Reconnect))
}

// fill queues as many messages as c may send now: up to its window in closed loop; in open loop
// those whose intended time has come (late ones included), after which c waits in the send queue
// for its next turn if its window still has room.
func (w *worker) fill(c *conn, now int64) {
	if w.sh.cfg.Rate == 0 {
		if !w.canQueue(c) {
			return
		}
		// Closed loop refills the whole free window at once (up to Pipeline messages per call
		// when streaming), so the room is worked out once rather than per message.
		room := w.sh.cfg.Pipeline - c.count
		if k := w.sh.cfg.Reconnect; k > 0 {
			room = min(room, int(uint64(k)-c.msgIndex))
		}
		for range room {
			w.queue(c, now, now)
		}
		return
	}
	for w.canQueue(c) && c.nextSend <= now {
		w.queue(c, c.nextSend, now)
		c.nextSend += w.sh.interval
	}
	if w.canQueue(c) || w.awaitsEcho(c, now) {
		// c may be queued already, with the nextSend it had before the loop above moved it on
		// (an echo that freed a slot after its send came due): its place must follow. In harvest
		// mode a full window keeps its place too: its echo may be here, unread until a wake.
		w.sendQueue.update(c)
	} else {
		w.sendQueue.remove(c)
	}
}

// queue appends the next message of c's stream to its window; flush writes it.
func (w *worker) queue(c *conn, intended, now int64) {
	sizes := w.sh.cfg.Sizes
	size := uint64(sizes[c.sizeIdx])
	// sizeIdx follows msgIndex mod len(sizes) by counting, not dividing: this runs per message.
	c.sizeIdx++
	if c.sizeIdx == len(sizes) {
		c.sizeIdx = 0
	}
	m := c.push()
	*m = message{end: c.queued + size, size: uint32(size), queuedAt: now, intended: intended}
	c.queued += size
	c.msgIndex++
}

// flush writes c's queued bytes until they are all written or the socket buffer is full.
func (w *worker) flush(c *conn) {
	for c.sent < c.queued {
		var out []byte
		if w.sh.cfg.Frame {
			out = w.encoded[:c.encodeFrames(w.encoded)]
		} else {
			// Raw mode writes straight from the pattern table: no copy, no buffer.
			out = patternAt(c.streamID, c.sent, int(min(c.queued-c.sent, patternSpan)))
		}
		n, err := sockutil.SendNonblock(c.fd, out)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return // send buffer full: the edge-triggered EPOLLOUT calls us again
			}
			w.ioFailed(c, err) // EPIPE, ECONNRESET: the server closed or reset us
			return
		}
		c.sent += uint64(n)
		w.st.totalSent += uint64(n)
		// A short write means the buffer filled up; the next write sees EAGAIN, which is what
		// guarantees an EPOLLOUT edge once there is room.
	}
}

// readable reads everything the socket has and processes the echoes. events are the epoll events
// that reported it.
func (w *worker) readable(c *conn, events uint32) {
	// With edge-triggered epoll a FIN (or reset) that arrives together with data raises one event,
	// not two: a short read would take the data and leave the close unseen for good, with a
	// message in flight forever. So when the event says the peer hung up, read on until the read
	// that returns 0 or the error.
	hungUp := events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for {
		var n int
		var now int64
		var err error
		if w.sh.harvest {
			n, now, err = w.readStamped(c)
		} else {
			n, err = sockutil.ReadNonblock(c.fd, w.readBuf)
			now = w.sh.clock.now()
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				// Drained; edge-triggered epoll reports the next arrival. The reads before this
				// one may have completed c's whole window, so it is refilled all the same.
				break
			}
			w.ioFailed(c, err) // ECONNRESET and friends
			return
		}
		if n == 0 {
			// The server closed its end before echoing everything: an echo server never does
			// that to a client that has not closed.
			w.ioFailed(c, errEOF)
			return
		}
		w.st.totalReceived += uint64(n)
		if !w.consume(c, w.readBuf[:n], now) {
			return
		}
		if n < len(w.readBuf) && !hungUp {
			// A short read took everything the socket had; anything arriving later, a FIN
			// included, raises a new edge. This saves the read that would only return EAGAIN.
			break
		}
	}
	// The refill waits until every event of this epoll_wait batch has been read (see run).
	w.echoed = append(w.echoed, c)
}

// afterEchoes refills c's window, or recycles it in Reconnect mode, or closes it while stopping.
func (w *worker) afterEchoes(c *conn, now int64) {
	if c.state != stateOpen {
		return
	}
	if c.count == 0 {
		if w.stopping {
			w.closeConn(c)
			return
		}
		if k := w.sh.cfg.Reconnect; k > 0 && c.msgIndex >= uint64(k) {
			w.closeConn(c)
			c.incarnation++
			w.startConnect(c, now)
			return
		}
	}
	if w.sh.harvest && c.nextSend <= now && c.nextSend >= c.echoAt && w.inWindow(now) {
		// The window had room when this send came due (its echo was in, unread): how late the
		// send goes out is the meter's lateness, as for a send the timer issues.
		recordMicros(w.st.scheduleLag, now-c.nextSend)
	}
	w.fill(c, now)
	if c.sent < c.queued {
		w.flush(c)
	}
}

// consume checks echoed bytes b, which arrived at time now, against c's messages in flight and
// completes the messages they finish. It returns false if it had to close c.
func (w *worker) consume(c *conn, b []byte, now int64) bool {
	if c.received+uint64(len(b)) > c.sent {
		// More bytes back than were sent: the server invented or repeated data.
		w.failMessage(c, now)
		w.ioFailed(c, errUnsolicited)
		return false
	}
	// Completions of one call share now, and messages queued together share their send times, so
	// their latencies are often identical: complete gathers runs of equal samples, which
	// endCompletions records, each run with one RecordValues (exact: every message is still a
	// sample).
	w.beginCompletions(now)
	defer w.endCompletions()
	verify := w.sh.cfg.Verify
	if !w.sh.cfg.Frame {
		// The whole chunk is checked with one comparison against the pattern at its stream offset;
		// only a chunk that differs is checked again message by message, to find which messages
		// carry the wrong bytes. Either way a message fails exactly when one of its bytes is wrong.
		chunkWrong := verify && !matchesPattern(b, c.streamID, c.received)
		for len(b) > 0 {
			m := c.front()
			k := int(min(uint64(len(b)), m.end-c.received))
			if chunkWrong && !m.failed && !matchesPattern(b[:k], c.streamID, c.received) {
				m.failed = true
			}
			c.received += uint64(k)
			b = b[k:]
			if c.received == m.end {
				w.complete(c)
			}
		}
		return true
	}
	for len(b) > 0 {
		k, ev := c.parser.next(b)
		off := c.received
		c.received += uint64(k)
		m := c.front()
		switch ev {
		case frameHeader:
			if c.parser.Length != int(m.size)-frameHeaderLen || c.parser.Seq != c.seqAt(0) {
				// A wrong length or sequence number loses the frame boundaries for good: the
				// rest of this stream cannot be parsed.
				w.failMessage(c, now)
				w.ioFailed(c, errFrame)
				return false
			}
			if c.parser.Length == 0 {
				w.complete(c)
			}
		case framePayload:
			if verify && !m.failed && !matchesPattern(b[:k], c.streamID, off) {
				m.failed = true
			}
			if c.parser.Remaining() == 0 {
				w.complete(c)
			}
		}
		b = b[k:]
	}
	return true
}

// failMessage counts the front message of c as failed verification at once in the window's
// count, because its echo will never complete; closeConn, which follows, counts it in the total
// with the other failed messages it abandons. Bytes echoed with no message in flight at all count
// as one wrong echo in the total.
func (w *worker) failMessage(c *conn, now int64) {
	if c.count == 0 {
		w.st.verifyFailuresTotal++
		return
	}
	if w.inWindow(now) {
		w.st.verifyFailures++
	}
	c.front().failed = true
}

// completions is the state of one consume call's completions. They all happen at the same now,
// so whether it is in the window, past it, and which second of the window it falls in are worked
// out once per call (beginCompletions); per message there remain the counts, which are summed
// here and added to the worker's totals once per call (endCompletions), and the latency samples.
type completions struct {
	now      int64
	inWindow bool
	past     bool         // pastWindow(now)
	second   *secondStats // the window's second now falls in; nil outside the window
	messages uint64
	bytes    uint64
}

// beginCompletions prepares w.done for completions at now.
func (w *worker) beginCompletions(now int64) {
	w.done = completions{now: now, inWindow: w.inWindow(now), past: w.pastWindow(now)}
	if w.done.inWindow {
		sec := int((now - w.measureStart) / int64(time.Second))
		for len(w.st.seconds) <= sec {
			w.st.seconds = append(w.st.seconds, secondStats{latency: newSecondHistogram()})
		}
		w.done.second = &w.st.seconds[sec]
	}
}

// endCompletions adds what the completions since beginCompletions counted to the worker's totals
// and records their latency samples.
func (w *worker) endCompletions() {
	d := &w.done
	w.st.totalMessages += d.messages
	w.newMessages += d.messages
	w.newBytes += d.bytes
	if d.inWindow {
		w.st.messages += d.messages
		w.st.bytes += d.bytes
		d.second.messages += d.messages
		d.second.bytes += d.bytes
	}
	d.messages, d.bytes = 0, 0
	w.runLatency.flush()
	w.runUncorrected.flush()
	w.runSecond.flush()
}

// claimMessage takes one of the window's Config.Messages for the completion about to be counted.
// The last one ends the window, for the whole run, at w.done.now; once they are all taken, this
// completion and the rest of the consume call fall past the window, like completions after a
// timed window's end: not counted, and incomplete if they were due in it.
func (w *worker) claimMessage() {
	d := &w.done
	left := w.sh.messagesLeft.Add(-1)
	if left == 0 {
		w.st.windowEnd = min(w.st.windowEnd, d.now)
		w.sh.fullAt.Store(d.now)
		w.sh.full <- struct{}{} // never blocks: only one worker counts the last message
		return
	}
	if left > 0 {
		return
	}
	w.endCompletions() // what this call counted before stays in the window
	end := d.now
	if at := w.sh.fullAt.Load(); at != 0 {
		end = min(end, at) // 0 only while the worker that took the last one has not stored it yet
	}
	w.st.windowEnd = min(w.st.windowEnd, end)
	d.inWindow, d.second, d.past = false, nil, w.pastWindow(d.now)
}

// complete records the front message of c, whose last byte arrived at w.done.now.
func (w *worker) complete(c *conn) {
	m := c.front()
	d := &w.done
	if d.inWindow && w.sh.cfg.Messages > 0 {
		w.claimMessage()
	}
	d.messages++
	d.bytes += uint64(m.size)
	if m.failed {
		w.st.verifyFailuresTotal++
		if d.inWindow {
			w.st.verifyFailures++
		}
	}
	if d.past && w.dueInWindow(m) {
		w.recordIncomplete(m.intended) // it was still in flight when the window ended
	}
	if d.inWindow {
		if !c.echoedInWin {
			c.echoedInWin = true
			w.st.slotsEchoed++
		}
		w.runLatency.add(w.st.latency, d.now-m.intended)
		if w.st.uncorrected != nil {
			w.runUncorrected.add(w.st.uncorrected, d.now-m.queuedAt)
		}
		w.runSecond.add(d.second.latency, d.now-m.intended)
	}
	c.echoAt = d.now
	c.popFront()
}

// ioFailed counts a mid-run read or write error and closes c; in Reconnect mode the slot connects
// again, otherwise it is dead.
func (w *worker) ioFailed(c *conn, err error) {
	w.st.ioErrors[errnoName(err)]++
	w.newErrors++
	w.closeConn(c)
	c.incarnation++
	if w.sh.cfg.Reconnect > 0 && !w.stopping {
		w.startConnect(c, w.sh.clock.now())
		return
	}
	c.state = stateDead
}

// closeConn closes c's socket. Messages still in flight are abandoned; those whose echo had
// already gone wrong still count in the verification total. Those due in the window and
// abandoned once it has begun (a read or write error, a reset) will never complete, so they count
// as incomplete, as countIncomplete counts what is still in flight at the stop: without that a
// server that resets connections would lose its slowest messages from the percentiles and look
// better than one that answers them late. After the stop, countIncomplete has counted them.
func (w *worker) closeConn(c *conn) {
	if c.fd < 0 {
		return
	}
	if c.count > 0 {
		now := w.sh.clock.now()
		begun := !w.stopping && w.measureStart != 0 && now >= w.measureStart
		for i := range c.count {
			m := c.at(i)
			if m.failed {
				w.st.verifyFailuresTotal++
			}
			if begun && w.dueInWindow(m) {
				w.recordIncomplete(m.intended)
			}
		}
	}
	switch c.state {
	case stateOpen:
		w.open--
	case stateConnecting:
		w.connecting--
	}
	unix.Close(c.fd) // also removes it from the epoll set
	c.fd = -1
	c.state = stateIdle
	c.count = 0
	w.sendQueue.remove(c)
}

// closeAllConns closes whatever is still open when the loop ends.
func (w *worker) closeAllConns() {
	for i := range w.conns {
		w.closeConn(&w.conns[i])
	}
	w.publishNow()
}

var (
	errEOF         = errors.New("EOF")
	errUnsolicited = errors.New("UNSOLICITED")
	errFrame       = errors.New("FRAME")
)
