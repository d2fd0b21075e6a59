package loadgen

// Timers and the open-loop schedule: what comes due when, and the timerfd that wakes the loop for it.

import (
	"time"

	"golang.org/x/sys/unix"
)

// serviceTimers does whatever has come due: ramp connects, reconnect retries, connect timeouts
// and open-loop sends.
func (w *worker) serviceTimers(now int64) {
	if w.stopping {
		return
	}
	for w.nextConnect < len(w.conns) && w.connecting < w.maxConnecting {
		c := &w.conns[w.nextConnect]
		if w.connectDue(c) > now {
			break
		}
		w.nextConnect++
		if w.st.firstConnect == 0 {
			w.st.firstConnect = now
		}
		w.startConnect(c, now)
	}
	for i := 0; i < len(w.retries); {
		c := w.retries[i]
		if c.retryAt > now {
			i++
			continue
		}
		w.retries[i] = w.retries[len(w.retries)-1]
		w.retries = w.retries[:len(w.retries)-1]
		w.startConnect(c, now)
	}
	if w.connecting > 0 && now-w.lastScan >= int64(connectScanInterval) {
		w.lastScan = now
		for i := range w.conns {
			c := &w.conns[i]
			if c.state == stateConnecting && now-c.connectAt >= int64(connectTimeout) {
				w.connectFailed(c, unix.ETIMEDOUT, now)
			}
		}
	}
	for w.sendQueue.len() > 0 && w.sendQueue.top().nextSend <= now {
		c := w.sendQueue.pop()
		if w.inWindow(now) {
			recordMicros(w.st.scheduleLag, now-c.nextSend)
		}
		w.fill(c, now)
		w.flush(c)
	}
	if !w.rampReported && w.unresolved == 0 {
		w.rampReported = true
		w.sh.rampDone <- struct{}{}
	}
}

// connectDue is when the initial ramp may start connecting slot c: slot i at i/ConnectRate
// seconds after the start, or at once without a ConnectRate.
func (w *worker) connectDue(c *conn) int64 {
	if w.sh.cfg.ConnectRate == 0 {
		return 0
	}
	return int64(c.slot) * int64(time.Second) / int64(w.sh.cfg.ConnectRate)
}

// nextDeadline is the earliest time serviceTimers or the drain has something to do, or -1.
func (w *worker) nextDeadline() int64 {
	if w.stopping {
		return w.drainUntil
	}
	next := int64(-1)
	earlier := func(t int64) {
		if next < 0 || t < next {
			next = t
		}
	}
	if w.measureEnd != 0 {
		earlier(w.measureEnd)
	}
	if w.nextConnect < len(w.conns) && w.connecting < w.maxConnecting {
		earlier(w.connectDue(&w.conns[w.nextConnect]))
	}
	for _, c := range w.retries {
		earlier(c.retryAt)
	}
	if w.connecting > 0 {
		earlier(w.lastScan + int64(connectScanInterval))
	}
	if w.sendQueue.len() > 0 {
		earlier(w.sendQueue.top().nextSend)
	}
	return next
}

// armTimer sets the timerfd for the next deadline and returns the epoll_wait timeout: 0 to poll
// when the deadline is too close to sleep for, -1 otherwise (the timerfd or a socket wakes us).
// A timerfd rather than epoll_wait's millisecond timeout because open-loop sends are scheduled to
// the microsecond; its hrtimer has no slack, unlike epoll_pwait2's.
func (w *worker) armTimer() int {
	next := w.nextDeadline()
	if next < 0 {
		return -1
	}
	// A fresh reading: serviceTimers may have taken a while, and the timer is armed relative.
	now := w.sh.clock.now()
	if next-now <= int64(spinThreshold) {
		return 0
	}
	if w.armedFor != 0 && w.armedFor <= next {
		return -1 // armed for this deadline or an earlier one, which wakes us to re-arm
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(next - now)}
	if err := unix.TimerfdSettime(w.timerfd, 0, &spec, nil); err != nil {
		// Cannot happen with a valid fd and spec; fall back to epoll_wait's own timeout.
		return int((next-now)/int64(time.Millisecond)) + 1
	}
	w.armedFor = next
	return -1
}
