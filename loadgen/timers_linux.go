package loadgen

// Timers and the open-loop schedule: what comes due when, and the epoll_pwait2 timeout that wakes
// the loop for it.

import (
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// serviceTimers does whatever has come due: ramp connects, reconnect retries, connect timeouts
// and open-loop sends.
func (w *worker) serviceTimers(now int64) {
	if w.stopping {
		return
	}
	w.giveUpRamp()
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
	for w.sendQueue.len() > 0 && w.sendQueue.next() <= now {
		c := w.sendQueue.pop()
		if !w.canQueue(c) {
			// Harvest mode kept c queued while its window was full (awaitsEcho), and the harvest
			// that preceded this found its echo still out: the server is late, and the echo's
			// arrival refills c, as with any full window.
			continue
		}
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

// giveUpTimeouts is how many initial connects in a row may time out before the ramp stops trying
// the rest: a whole batch in flight, at least. A server that has stopped accepting (its fd
// ceiling, a full backlog dropping SYNs) completes none, and trying every remaining slot at
// connectTimeout per batch would take minutes to learn the same.
const giveUpTimeouts = 16

// giveUpRamp ends the initial ramp when the server has stopped completing connects: the slots
// not yet tried are counted as failed, under notTried, so the run measures the connections the
// server did take, and says how many it did not.
func (w *worker) giveUpRamp() {
	if w.timedOutInARow < max(w.maxConnecting, giveUpTimeouts) || w.nextConnect >= len(w.conns) {
		return
	}
	n := len(w.conns) - w.nextConnect
	for i := w.nextConnect; i < len(w.conns); i++ {
		w.conns[i].state = stateDead
	}
	w.nextConnect = len(w.conns)
	w.unresolved -= n
	w.st.failed += n
	w.st.connectErrors[notTried] += n
	w.newErrors++
}

// notTried is the connect-error name of the slots giveUpRamp gave up on.
const notTried = "NOT_TRIED(server stopped completing connects)"

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
		earlier(w.sendQueue.next())
	}
	return next
}

// timeout is how long epoll_pwait2 may sleep: until next (nextDeadline), zero if it has passed,
// nil (no timeout) if there is none. A fresh reading of the clock, because serviceTimers may have
// taken a while and the timeout is relative.
func (w *worker) timeout(next int64) *unix.Timespec {
	if next < 0 {
		return nil
	}
	w.waitFor = unix.NsecToTimespec(max(next-w.sh.clock.now(), 0))
	return &w.waitFor
}

// preciseTimeouts sets the calling thread's timer slack to its minimum. epoll_pwait2's timeout is
// an hrtimer whose slack is the larger of 0.1 % of the timeout and the thread's timer slack,
// 50 µs by default: with it, a wake for a send due in 33 µs would come up to 50 µs late, and the
// lateness would be the meter's own. The slack is per thread, and the worker's thread is locked
// to it and exits with it, so no other goroutine inherits it.
func preciseTimeouts() {
	// Cannot fail with a positive value; if it did, the waits would only be less precise.
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// maxRawWait is the longest wait made as a raw system call (see epollWait).
const maxRawWait = time.Millisecond

// epollWait is epoll_pwait2(2), epoll_wait with a nanosecond timeout (nil: none). x/sys has no
// wrapper for it. A wait of at most maxRawWait is a raw system call, which the runtime does not
// see: it does not count the worker's P as blocked, so sysmon never takes it away and the return
// needs no P back. The process's other goroutines run on the spare P that Run provides meanwhile,
// and the runtime's preemption signal ends the wait with EINTR when it wants this goroutine to
// stop (garbage collection). Longer waits, and waits without a timeout, tell the runtime they
// may block, so that a loop idle for long holds nothing up even without that signal. The raw
// calls here go through the syscall package, as sockutil's do (its package documentation says why).
func epollWait(epfd int, events []unix.EpollEvent, timeout *unix.Timespec) (int, error) {
	args := [...]uintptr{uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(timeout))}
	var n uintptr
	var errno syscall.Errno
	if timeout != nil && timeout.Nano() <= int64(maxRawWait) {
		n, _, errno = syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT2, args[0], args[1], args[2], args[3], 0, 0)
	} else {
		n, _, errno = unix.Syscall6(unix.SYS_EPOLL_PWAIT2, args[0], args[1], args[2], args[3], 0, 0)
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
