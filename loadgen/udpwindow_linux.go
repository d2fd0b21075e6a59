package loadgen

// When a UDP worker sends and gives up: the timeout scan, the open-loop pacer, refilling a
// window, and the measured window with its drain.

import "golang.org/x/sys/unix"

// expire times out, every scanEvery, the datagrams unanswered for longer than the timeout. A
// flow's oldest datagram is at the front of its window, so each flow is looked at only as far as
// its first datagram still in time.
func (w *udpWorker) expire(now int64) {
	if now < w.nextScan {
		return
	}
	w.nextScan = now + w.scanEvery
	if w.inFlight == 0 {
		return
	}
	for i := range w.flows {
		f := &w.flows[i]
		expired := false
		for f.count > 0 && now-f.front().sentAt >= w.timeout {
			p := *f.front()
			f.remove(0)
			w.inFlight--
			w.timedOut(f, p)
			expired = true
		}
		if expired {
			w.resume(f, now)
		}
	}
}

// pace takes the open-loop turns that have come due: a flow whose window has room sends at once,
// one whose window is full owes the send, which goes out as soon as a slot frees.
func (w *udpWorker) pace(now int64) {
	if w.sh.cfg.Rate == 0 || w.stopping {
		return
	}
	for {
		f, intended := w.turn(w.paceTurn)
		if intended > now {
			return
		}
		w.paceTurn++
		if f.dead {
			continue
		}
		if f.owed == 0 && w.canSend(f) {
			if w.inWindow(now) {
				recordMicros(w.st.scheduleLag, now-intended)
			}
			w.send(f, now, intended)
			continue
		}
		if f.owed == 0 {
			f.owedFrom = intended
		}
		f.owed++
	}
}

// turn is the flow and intended send time of open-loop turn n.
func (w *udpWorker) turn(n int64) (*udpFlow, int64) {
	k := int64(len(w.flows))
	f := &w.flows[n%k]
	return f, w.scheduleBase + f.phase + n/k*w.sh.interval
}

// resume sends what f's window has room for: in closed loop, until it is full; in open loop, the
// sends it owes.
func (w *udpWorker) resume(f *udpFlow, now int64) {
	if w.sh.cfg.Rate == 0 {
		w.fillWindow(f, now)
		return
	}
	for f.owed > 0 && w.canSend(f) {
		if !w.send(f, now, f.owedFrom) {
			return
		}
		f.owed--
		f.owedFrom += w.sh.interval
	}
}

func (w *udpWorker) fillWindow(f *udpFlow, now int64) {
	for w.canSend(f) && w.send(f, now, now) {
	}
}

func (w *udpWorker) canSend(f *udpFlow) bool {
	return !w.stopping && f.fd >= 0 && !f.blocked && !f.full()
}

func (w *udpWorker) queueRefill(f *udpFlow) {
	if !f.refilling {
		f.refilling = true
		w.refill = append(w.refill, f)
	}
}

// observeWindow picks up the measured window once Run has published it, and stops when it is
// over, when Run is cancelled, or when every flow has failed.
func (w *udpWorker) observeWindow(now int64) {
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
		w.st.windowEnd = min(w.st.windowEnd, at)
		w.stop(now)
		return
	}
	if w.sh.stop.Load() || (w.measureEnd != 0 && now >= w.measureEnd) {
		w.stop(now)
		return
	}
	if w.open == 0 {
		w.st.allDead = true
		w.stop(now)
	}
}

// stop ends the sending. The drain that follows lasts until every datagram in flight is echoed or
// has timed out, so each datagram of the window meets its fate before the run ends.
func (w *udpWorker) stop(now int64) {
	if w.stopping {
		return
	}
	w.stopping = true
	w.stoppedAt = now
	w.drainUntil = now + w.timeout + w.scanEvery
	if w.st.windowEnd == 0 || now < w.st.windowEnd {
		w.st.windowEnd = now
	}
	if w.measureStart == 0 || w.st.windowEnd <= w.measureStart {
		return
	}
	// Open loop: the sends the schedule wanted in the window that never went out, because their
	// flow's window stayed full, are the window's incomplete messages.
	for i := range w.flows {
		f := &w.flows[i]
		for m := range f.owed {
			if t := f.owedFrom + int64(m)*w.sh.interval; t >= w.measureStart && t < w.st.windowEnd {
				w.st.incomplete++
			}
		}
	}
}

// finished reports whether the loop is done: stopping, and nothing in flight or out of time.
func (w *udpWorker) finished(now int64) bool {
	return w.stopping && (w.inFlight == 0 || now >= w.drainUntil)
}

func (w *udpWorker) inWindow(t int64) bool {
	return w.measureStart != 0 && t >= w.measureStart && t < w.st.windowEnd
}

// waitTimeout is how long epoll_pwait2 may sleep: until the window's end, the next open-loop turn,
// the next timeout scan while anything is in flight, or the drain's end; nil if none is due.
func (w *udpWorker) waitTimeout() *unix.Timespec {
	next := int64(-1)
	earlier := func(t int64) {
		if next < 0 || t < next {
			next = t
		}
	}
	if w.inFlight > 0 {
		earlier(w.nextScan)
	}
	switch {
	case w.stopping:
		earlier(w.drainUntil)
	default:
		if w.measureEnd != 0 {
			earlier(w.measureEnd)
		}
		if w.sh.cfg.Rate > 0 {
			_, t := w.turn(w.paceTurn)
			earlier(t)
		}
	}
	if next < 0 {
		return nil
	}
	w.waitFor = unix.NsecToTimespec(max(next-w.sh.clock.now(), 0))
	return &w.waitFor
}
