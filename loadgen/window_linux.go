package loadgen

// The measured window: when a worker counts, when it stops, and what was still due at the end.

// observeWindow picks up the measured window once Run has published it, and starts the drain
// when it is over or Run has been cancelled.
func (w *worker) observeWindow(now int64) {
	if w.measureStart == 0 {
		if start := w.sh.measureStart.Load(); start != 0 {
			w.measureEnd = w.sh.measureEnd.Load()
			w.measureStart = start
			w.st.windowEnd = w.measureEnd
			if w.stopping && w.stoppedAt < w.st.windowEnd {
				w.st.windowEnd = w.stoppedAt
			}
		}
	}
	if w.stopping {
		return
	}
	if at := w.sh.fullAt.Load(); at != 0 {
		// Another worker counted the window's last message (Config.Messages): the window ended
		// then, not when this worker noticed.
		w.st.windowEnd = min(w.st.windowEnd, at)
		w.stop(now)
		return
	}
	if w.sh.stop.Load() || (w.measureEnd != 0 && now >= w.measureEnd) {
		w.stop(now)
		return
	}
	if w.rampReported && w.open == 0 && w.connecting == 0 && len(w.retries) == 0 {
		// Every slot has died: the server is gone or resets everyone. Waiting longer would
		// measure nothing.
		w.st.allDead = true
		w.stop(now)
	}
}

// stop ends the load: no new messages or connects; echoes in flight get drainTimeout to arrive.
func (w *worker) stop(now int64) {
	if w.stopping {
		return
	}
	w.stopping = true
	w.stoppedAt = now
	w.drainUntil = now + int64(drainTimeout)
	if w.st.windowEnd == 0 || now < w.st.windowEnd {
		w.st.windowEnd = now
	}
	if w.measureStart != 0 && w.st.windowEnd > w.measureStart {
		w.countIncomplete()
	}
	w.sendQueue.clear()
	w.retries = w.retries[:0]
	for i := range w.conns {
		c := &w.conns[i]
		if c.state == stateConnecting || (c.state == stateOpen && c.count == 0) {
			w.closeConn(c)
		}
		if c.state == stateIdle {
			c.state = stateDead
		}
	}
}

// finished reports whether the loop is done: stopping, and every socket closed or out of time.
func (w *worker) finished(now int64) bool {
	return w.stopping && ((w.open == 0 && w.connecting == 0) || now >= w.drainUntil)
}

func (w *worker) inWindow(t int64) bool {
	return w.measureStart != 0 && t >= w.measureStart && t < w.st.windowEnd
}

// pastWindow reports whether now is after the window's end while the loop has not yet stopped:
// the events of the one loop iteration between the end and the stop. A message that completes or
// is abandoned then was still incomplete when the window ended.
func (w *worker) pastWindow(now int64) bool {
	return !w.stopping && w.measureStart != 0 && now >= w.st.windowEnd
}

// dueInWindow reports whether m, looked at after the window's end, was due in the window: it had
// been sent before the end (whenever its intended time, as complete counts a message intended
// during warmup that completes in the window), or, in open loop, the schedule wanted it sent
// inside the window. Open-loop sends intended before the window and never issued do not count:
// there can be arbitrarily many of them, and they were never the window's to send.
func (w *worker) dueInWindow(m *message) bool {
	return m.queuedAt < w.st.windowEnd || (m.intended >= w.measureStart && m.intended < w.st.windowEnd)
}

// countIncomplete runs once, when the loop stops after the window has begun, and counts what was
// due in the window but had not completed by its end (Result.Incomplete): the messages in flight
// and, in open loop, the scheduled sends not yet issued. Without it a server that stops answering
// would simply produce no samples, and its stall would vanish from the percentiles.
func (w *worker) countIncomplete() {
	end := w.st.windowEnd
	interval := w.sh.interval
	for i := range w.conns {
		c := &w.conns[i]
		for j := range c.count {
			if m := c.at(j); w.dueInWindow(m) {
				w.recordIncomplete(m.intended)
			}
		}
		if w.sh.cfg.Rate == 0 || !c.scheduled || c.state == stateDead {
			continue // no schedule, or a slot given up on: nothing more was going to be sent
		}
		next := c.nextSend
		if next < w.measureStart {
			next += (w.measureStart - next + interval - 1) / interval * interval
		}
		for ; next < end; next += interval {
			w.recordIncomplete(next)
		}
	}
}

// recordIncomplete counts one message due in the window that had not completed by its end. In open
// loop its latency so far, from its intended time to the window's end, goes into Latency: it is a
// lower bound of the real one, and leaving it out would hide a stall. In closed loop a message not
// sent cannot be late, so only the count is kept.
func (w *worker) recordIncomplete(intended int64) {
	w.st.incomplete++
	if w.sh.cfg.Rate > 0 {
		recordMicros(w.st.latency, w.st.windowEnd-intended)
	}
}
