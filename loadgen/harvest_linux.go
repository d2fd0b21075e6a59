package loadgen

// Harvest mode: in open loop the engine wakes for its send schedule only, and collects the echoes
// that arrived meanwhile at each of those wakes, timed by the kernel's receive timestamp.
//
// Why: waking for every echo costs the client a second wake per message (the first is its send
// timer), and on this kind of machine a wake is most of what a message costs the client: a
// profile at 30,000 msgs/s × 1,000 connections showed the server woken once per message and the
// client about twice. Echoes do not need to be read when they arrive, only timed when they
// arrive, and the kernel already times them: with SO_TIMESTAMPNS every received segment carries
// the time it entered the stack, and recvmsg(2) hands over the timestamp of the last segment it
// read. So while the next send is near (at most maxRawWait away) the loop sleeps on the clock
// alone, and on waking reads whatever echoes are there (a zero-timeout epoll_pwait2), completing
// each at its kernel arrival time, before it issues the sends that came due.
//
// What keeps it exact (README.md, "Harvest mode", says the same at more length):
//   - Coalescing. A read that spans several segments gets the last one's timestamp, which is right
//     for the message that the last byte completes and too late for any earlier message in the
//     same read. With Pipeline 1 a read never spans two messages (the next is sent only after the
//     echo completes), so harvest mode is used only then; deeper pipelines wake on echoes.
//   - Clocks. The timestamp is CLOCK_REALTIME, the engine's clock monotonic: the offset between
//     the two is read again whenever it is more than realOffsetMaxAge old at a stamped read (so a
//     slewed or stepped wall clock moves it with us), and a converted arrival outside [the
//     message's send, the read] is a step or a missing stamp: the read's time is used instead.
//   - A window that looks full only because its echo is unread. A connection whose window is full
//     keeps its place in the send queue in harvest mode, so the loop wakes at its next turn; the
//     sends due for connections with room go out first, then the harvest, whose refill sends that
//     connection's message if its echo was in. If the echo is still out, the server is late, and
//     the connection leaves the queue as it always did.
//   - Long gaps, closed loop, the drain: when the next deadline is more than maxRawWait away, or
//     there is none, or the run is stopping, the loop waits on the sockets as before.
//
// The timestamps are a global switch in the kernel (net_enable_timestamp): while any socket asks
// for them, every received packet on the machine is stamped, the server's included. The
// measurement of what that costs the server is in results/2026-12-01-one-wake/.

import (
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// harvestMode reports whether a run with cfg uses harvest mode.
func harvestMode(cfg *Config) bool {
	return cfg.Rate > 0 && cfg.Pipeline == 1 && !cfg.WakeOnEcho
}

// stampCmsgSpace is the control buffer of a timestamped read: one cmsghdr and one timespec, with
// room to spare for alignment.
const stampCmsgSpace = 64

// stampedReader is a worker's preallocated recvmsg state, so that a timestamped read allocates
// nothing.
type stampedReader struct {
	msg  unix.Msghdr
	iov  unix.Iovec
	cmsg [stampCmsgSpace]byte
	// realOffset is CLOCK_REALTIME minus the engine's clock, in ns, as of offsetAt (engine clock).
	realOffset, offsetAt int64
}

// enableRxTimestamps asks the kernel to stamp the segments fd receives.
func enableRxTimestamps(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}

// realOffsetMaxAge is how old the wall-clock offset may be when a stamp is converted. Reading it
// takes both clocks; read at every wake, as it once was, it made evenly spaced sends pay two more
// clock reads each, and clock reads were a fifth of the loop's user time in a profile at 10,000
// sends a second. A slewed clock drifts by nanoseconds in a millisecond, and a step shows as an
// arrival outside its bounds either way.
const realOffsetMaxAge = int64(time.Millisecond)

// refreshRealOffset reads the wall clock and the engine's clock together.
func (w *worker) refreshRealOffset() {
	t := time.Now() // one reading with both clocks in it
	w.stamped.offsetAt = int64(t.Sub(w.sh.clock.base))
	w.stamped.realOffset = t.UnixNano() - w.stamped.offsetAt
}

// readStamped is a read of c's socket into w.readBuf that also returns when the last byte read
// arrived, on the engine's clock: the kernel's receive timestamp when it has a plausible one, else
// now, the time of the read. It retries on EINTR, like sockutil.ReadNonblock.
func (w *worker) readStamped(c *conn) (n int, arrival int64, err error) {
	r := &w.stamped
	r.iov.Base = &w.readBuf[0]
	r.iov.SetLen(len(w.readBuf))
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	for {
		r.msg.Control = &r.cmsg[0]
		r.msg.SetControllen(len(r.cmsg))
		got, _, errno := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&r.msg)), unix.MSG_DONTWAIT)
		if errno == unix.EINTR {
			continue // a signal arrived before any byte was copied: nothing was read
		}
		now := w.sh.clock.now()
		if errno != 0 {
			return 0, now, errno
		}
		n = int(got)
		arrival = now
		if stamp, ok := r.stamp(); ok && n > 0 {
			if r.offsetAt == 0 || now-r.offsetAt > realOffsetMaxAge {
				w.refreshRealOffset()
			}
			at := stamp - r.realOffset
			// The echo cannot have arrived before its message was sent nor after this read; a
			// stamp outside that was taken across a wall-clock step.
			if c.count > 0 && at >= c.front().queuedAt && at <= now {
				arrival = at
				w.st.kernelTimed++
			}
		}
		return n, arrival, nil
	}
}

// stamp returns the SCM_TIMESTAMPNS of the last recvmsg, in CLOCK_REALTIME ns.
func (r *stampedReader) stamp() (int64, bool) {
	const hdr = unix.SizeofCmsghdr
	length := int(r.msg.Controllen)
	for off := 0; off+hdr <= length; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&r.cmsg[off]))
		if h.Len < hdr || off+int(h.Len) > length {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= hdr+int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&r.cmsg[off+hdr]))
			return ts.Nano(), true
		}
		off += cmsgAlign(int(h.Len))
	}
	return 0, false
}

// cmsgAlign rounds a control message length up to the kernel's alignment (that of a long).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// sleepOnly reports whether the loop, at now, should sleep on the clock alone until next (its
// nextDeadline) and harvest after, rather than wait on its sockets.
func (w *worker) sleepOnly(next, now int64) bool {
	if !w.sh.harvest || w.stopping || next < 0 {
		return false
	}
	d := next - now
	return d > 0 && d <= int64(maxRawWait)
}

// sleepUntil is clock_nanosleep(2) on CLOCK_MONOTONIC until the engine-clock time at, as a raw
// system call for the reason epollWait gives; at is at most maxRawWait away. The deadline is
// absolute, so the sleep needs no fresh clock reading (the now sleepOnly judged by is from before
// serviceTimers' sends), and one that has passed meanwhile returns at once. An interruption
// (EINTR, the runtime's preemption signal) only ends the sleep early: the loop then harvests and
// works out its deadline again.
func (w *worker) sleepUntil(at int64) {
	w.waitFor = unix.NsecToTimespec(at + w.sh.monoOffset)
	syscall.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
		uintptr(unsafe.Pointer(&w.waitFor)), 0, 0, 0)
}

// monotonicOffset is CLOCK_MONOTONIC minus clock's reading, in ns. Go's monotonic clock is
// CLOCK_MONOTONIC less a constant, so the offset is fixed; it is read between two readings of
// clock, and the closest bracket of a few is kept, so it is off by half a clock read at most.
func monotonicOffset(clock measureClock) (int64, error) {
	var offset, best int64 = 0, -1
	for range 5 {
		var ts unix.Timespec
		before := clock.now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return 0, fmt.Errorf("loadgen: clock_gettime(CLOCK_MONOTONIC): %w", err)
		}
		after := clock.now()
		if best < 0 || after-before < best {
			best, offset = after-before, ts.Nano()-(before+after)/2
		}
	}
	return offset, nil
}

// awaitsEcho reports whether c, whose window is full, should keep its place in the send queue in
// harvest mode: it would have room but for an echo that may be here unread, and its next turn is
// still ahead (an overdue one would make the loop spin while the server is late).
func (w *worker) awaitsEcho(c *conn, now int64) bool {
	cfg := &w.sh.cfg
	return w.sh.harvest && c.state == stateOpen && !w.stopping && c.count >= cfg.Pipeline && c.nextSend > now &&
		(cfg.Reconnect == 0 || c.msgIndex < uint64(cfg.Reconnect))
}
