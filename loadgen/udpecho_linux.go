package loadgen

// What a UDP worker makes of each datagram read back, and of each one that times out: the
// counting behind Result's datagram fields (README.md, "UDP").

import "time"

// echo classifies one datagram read from f: the echo of a datagram in flight (intact or
// corrupted), a late echo of one already timed out, a duplicate, or garbage.
func (w *udpWorker) echo(f *udpFlow, b []byte, now int64) {
	w.st.totalReceived += uint64(len(b))
	w.udp.datagramsReceived++
	inWindow := w.inWindow(now)
	if !w.matchBySeq {
		// Some datagrams are shorter than the header: echoes are matched in arrival order and
		// checked by length alone. With nothing in flight it can only be a duplicate or late.
		if f.count == 0 {
			if inWindow {
				w.udp.duplicated++
			}
			return
		}
		p := *f.front()
		w.take(f, 0)
		if len(b) != int(p.size) {
			w.corrupted(p, inWindow)
			return
		}
		w.complete(f, p, now, inWindow)
		return
	}
	if len(b) < udpHeaderLen {
		w.corrupted(udpPending{sentAt: -1}, inWindow)
		return
	}
	id, seq := parseUDPHeader(b)
	if id != f.id || seq >= f.nextSeq {
		w.corrupted(udpPending{sentAt: -1}, inWindow) // a damaged header, or one we never wrote
		return
	}
	if i := f.find(seq); i >= 0 {
		p := *f.at(i)
		w.take(f, i)
		if len(b) != int(p.size) || (w.sh.cfg.Verify && !matchesPattern(b[udpHeaderLen:], uint64(id), udpBodyOffset(seq))) {
			w.corrupted(p, inWindow)
			return
		}
		if f.anyEchoed && seq < f.highestEchoed && inWindow {
			w.udp.reordered++
		}
		if !f.anyEchoed || seq > f.highestEchoed {
			f.highestEchoed, f.anyEchoed = seq, true
		}
		w.complete(f, p, now, inWindow)
		return
	}
	if l, ok := f.takeLost(seq); ok {
		if l.inCohort {
			w.udp.late++
		}
		return
	}
	if inWindow {
		w.udp.duplicated++
	}
}

// take removes the i-th datagram in flight from f's window, which then has room for the next.
func (w *udpWorker) take(f *udpFlow, i int) {
	f.remove(i)
	w.inFlight--
	w.queueRefill(f)
}

// complete counts p's intact echo, arrived at now.
func (w *udpWorker) complete(f *udpFlow, p udpPending, now int64, inWindow bool) {
	if w.inWindow(p.sentAt) {
		w.udp.sent++
		w.udp.echoed++
	}
	w.st.totalMessages++
	w.newMessages++
	w.newBytes += uint64(p.size)
	if inWindow && w.sh.cfg.Messages > 0 {
		inWindow = w.claimMessage(now)
	}
	if !inWindow {
		return
	}
	if !f.echoedInWin {
		f.echoedInWin = true
		w.st.slotsEchoed++
	}
	w.st.messages++
	w.st.bytes += uint64(p.size)
	sec := int((now - w.measureStart) / int64(time.Second))
	for len(w.st.seconds) <= sec {
		w.st.seconds = append(w.st.seconds, secondStats{latency: newSecondHistogram()})
	}
	s := &w.st.seconds[sec]
	s.messages++
	s.bytes += uint64(p.size)
	recordMicros(s.latency, now-p.intended)
	recordMicros(w.st.latency, now-p.intended)
	if w.st.uncorrected != nil {
		recordMicros(w.st.uncorrected, now-p.sentAt)
	}
}

// claimMessage takes one of the window's Config.Messages for a completion at now, and reports
// whether it still counts in the window. The last one ends the window for the whole run.
func (w *udpWorker) claimMessage(now int64) bool {
	left := w.sh.messagesLeft.Add(-1)
	if left == 0 {
		w.st.windowEnd = min(w.st.windowEnd, now)
		w.sh.fullAt.Store(now)
		w.sh.full <- struct{}{} // never blocks: only one worker counts the last message
	}
	return left >= 0
}

// corrupted counts an echo that is wrong. p is the datagram in flight it answered, or has a
// negative sentAt when it answered none: a datagram whose header is unreadable names nothing.
func (w *udpWorker) corrupted(p udpPending, inWindow bool) {
	if p.sentAt >= 0 && w.inWindow(p.sentAt) {
		w.udp.sent++
	}
	w.st.verifyFailuresTotal++
	if inWindow {
		w.st.verifyFailures++
		w.udp.corrupted++
	}
}

// timedOut counts p, taken out of f's window unanswered after its timeout, as lost, once, and
// remembers it so that its late echo is not taken for a duplicate.
func (w *udpWorker) timedOut(f *udpFlow, p udpPending) {
	cohort := w.inWindow(p.sentAt)
	if cohort {
		w.udp.sent++
		w.udp.timedOut++
	}
	f.rememberLost(udpLost{seq: p.seq, inCohort: cohort})
}
