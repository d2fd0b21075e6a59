package loadgen

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"echobench/internal/sockutil"

	"golang.org/x/sys/unix"
)

// A UDP worker is the TCP worker's design (worker_linux.go) for flows instead of connections: one
// event loop on a locked thread, its own epoll instance and eventfd, non-blocking sockets. Its
// epoll is level-triggered: a flow reads until its window is empty rather than until EAGAIN, which
// saves ping-pong the read that would return EAGAIN, and whatever it left unread (a duplicate, a
// late echo) is reported again by the next epoll_pwait2. One echoed datagram costs the client one
// sendto(2), one read(2) and a share of one epoll_pwait2, as a TCP ping-pong does.

// udpWorker is one UDP event loop and the flows it owns.
type udpWorker struct {
	sh      *shared
	tid     int
	epfd    int
	wakefd  int
	events  []unix.EpollEvent
	flows   []udpFlow
	readBuf []byte // one datagram of any size
	sendBuf []byte // the datagram being sent, as large as the largest size
	refill  []*udpFlow

	matchBySeq bool
	timeout    int64 // Config.UDPTimeout, ns
	scanEvery  int64
	nextScan   int64
	inFlight   int // datagrams in flight over all flows
	open       int // flows with a socket

	// Open loop: the worker's schedule takes its flows in turn (their phases are staggered over
	// one interval, in flow order), so the next send is turn paceTurn: flow paceTurn mod
	// len(flows), in round paceTurn / len(flows). A simple pacer rather than the TCP engine's
	// send queue: every flow has the same interval, so the order never changes.
	scheduleBase int64
	paceTurn     int64

	measureStart, measureEnd int64
	stopping                 bool
	stoppedAt, drainUntil    int64
	waitFor                  unix.Timespec

	st   workerStats
	udp  udpCounts
	live *liveCounters
	// unpublished progress since the last publish
	newMessages, newBytes, newErrors uint64
}

func newUDPWorker(sh *shared, slots []int, live *liveCounters) (*udpWorker, error) {
	cfg := &sh.cfg
	largest := 0
	for _, s := range cfg.Sizes {
		largest = max(largest, s)
	}
	w := &udpWorker{
		sh:         sh,
		epfd:       -1,
		wakefd:     -1,
		events:     make([]unix.EpollEvent, eventBatch),
		readBuf:    make([]byte, sockutil.MaxDatagram+1),
		sendBuf:    make([]byte, largest),
		matchBySeq: matchBySeq(cfg.Sizes),
		timeout:    int64(cfg.UDPTimeout),
		scanEvery:  max(int64(cfg.UDPTimeout)/udpScanDivisor, 1),
		live:       live,
	}
	w.st = workerStats{
		latency:        NewHistogram(),
		connectLatency: NewHistogram(),
		connectErrors:  map[string]int{},
		ioErrors:       map[string]int{},
	}
	if cfg.Rate > 0 {
		w.st.uncorrected = NewHistogram()
		w.st.scheduleLag = NewHistogram()
	}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if w.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tokenWake}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, w.wakefd, &ev); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("epoll_ctl add fd %d: %w", w.wakefd, err)
	}
	w.flows = make([]udpFlow, len(slots))
	for i, slot := range slots {
		f := &w.flows[i]
		*f = udpFlow{index: i, id: uint32(slot), fd: -1, pending: make([]udpPending, cfg.Pipeline)}
		if cfg.Rate > 0 {
			f.phase = int64(slot) * sh.interval / int64(cfg.Conns)
		}
		if err := w.openFlow(f); err != nil {
			// EMFILE and the like: the flow stays empty, as a failed TCP connect leaves its slot.
			w.st.failed++
			w.st.connectErrors[errnoName(err)]++
			f.dead = true
			continue
		}
		w.st.established++
		w.open++
	}
	return w, nil
}

// openFlow gives f a connected UDP socket from its own ephemeral port, registered for reading.
// connect(2) on a UDP socket sends nothing: it fixes the peer, so send and read need no address
// and the kernel drops datagrams from anyone else.
func (w *udpWorker) openFlow(f *udpFlow) error {
	fd, err := unix.Socket(w.sh.family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, w.sh.addr()); err != nil {
		unix.Close(fd)
		return fmt.Errorf("connect udp fd %d: %w", fd, err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f.index)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return fmt.Errorf("epoll_ctl add fd %d: %w", fd, err)
	}
	f.fd = fd
	return nil
}

// closeFDs closes the worker's own descriptors, after it has exited (Run may wake it until then).
func (w *udpWorker) closeFDs() {
	for _, fd := range []*int{&w.epfd, &w.wakefd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	w.closeFlows()
}

// closeFlows closes every flow's socket. What is still in flight then has had its whole timeout
// (the drain waits that long) and counts as timed out.
func (w *udpWorker) closeFlows() {
	for i := range w.flows {
		f := &w.flows[i]
		for f.count > 0 {
			p := *f.front()
			f.remove(0)
			w.inFlight--
			w.timedOut(f, p)
		}
		if f.fd >= 0 {
			unix.Close(f.fd)
			f.fd = -1
			w.open--
		}
	}
}

// wake interrupts the worker's epoll_wait. Run calls it from another goroutine.
func (w *udpWorker) wake() {
	one := [8]byte{1}
	// EAGAIN means the counter is already non-zero: the worker will wake anyway.
	unix.Write(w.wakefd, one[:])
}

// run is the event loop: wait, read, time out, send, in data-flow order.
func (w *udpWorker) run() {
	runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
	w.tid = unix.Gettid()
	preciseTimeouts()
	defer w.closeFlows()
	now := w.sh.clock.now()
	w.nextScan = now + w.scanEvery
	if w.sh.cfg.Rate == 0 {
		for i := range w.flows {
			w.fillWindow(&w.flows[i], now)
		}
	}
	w.sh.rampDone <- struct{}{} // a flow is ready as soon as its socket is: there is no ramp
	for {
		now := w.sh.clock.now()
		w.observeWindow(now)
		w.expire(now)
		w.pace(now)
		w.publish()
		if w.finished(now) {
			return
		}
		n, err := epollWait(w.epfd, w.events, w.waitTimeout())
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue // a signal arrived; nothing is lost, wait again
			}
			if errors.Is(err, unix.ENOSYS) {
				err = fmt.Errorf("%w (the engine needs Linux 5.11 or later)", err)
			}
			w.st.err = fmt.Errorf("epoll_pwait2: %w", err)
			w.stop(w.sh.clock.now())
			return
		}
		now = w.sh.clock.now()
		for i := range n {
			w.dispatch(w.events[i], now)
		}
		// As in the TCP engine, the echoes of a whole batch are read before the next datagrams go
		// out, so the server finds a burst rather than being woken for each one.
		now = w.sh.clock.now()
		for _, f := range w.refill {
			f.refilling = false
			w.resume(f, now)
		}
		w.refill = w.refill[:0]
	}
}

// dispatch handles one epoll event.
func (w *udpWorker) dispatch(ev unix.EpollEvent, now int64) {
	if ev.Fd == tokenWake {
		var count [8]byte
		unix.Read(w.wakefd, count[:])
		return
	}
	f := &w.flows[ev.Fd]
	if f.fd < 0 {
		return // closed since this batch was reported
	}
	if ev.Events&unix.EPOLLOUT != 0 && f.blocked {
		// The send buffer has room again: stop watching for it, and send what waited.
		f.blocked = false
		in := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f.index)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, f.fd, &in); err != nil {
			w.flowFailed(f, fmt.Errorf("epoll_ctl mod fd %d: %w", f.fd, err))
			return
		}
		w.queueRefill(f)
	}
	if ev.Events&(unix.EPOLLIN|unix.EPOLLERR) != 0 {
		w.readable(f, now)
	}
}

// readable reads f's echoes until its window is empty or nothing is left to read.
func (w *udpWorker) readable(f *udpFlow, now int64) {
	for f.fd >= 0 {
		n, err := sockutil.ReadNonblock(f.fd, w.readBuf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return
			}
			w.countError(err)
			if errors.Is(err, unix.ECONNREFUSED) {
				// An ICMP port-unreachable for an earlier datagram: nothing listens at the
				// target (yet, or any more). The read reported it and cleared it; that datagram
				// times out. Read on.
				continue
			}
			return
		}
		w.echo(f, w.readBuf[:n], now)
		if f.count == 0 {
			return // level-triggered: anything still unread is reported again
		}
	}
}

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

// send sends f's next datagram and reports whether it went out.
func (w *udpWorker) send(f *udpFlow, now, intended int64) bool {
	size := w.sh.cfg.Sizes[f.sizeIdx]
	b := w.sendBuf[:size]
	encodeDatagram(b, f.id, f.nextSeq)
	err := sendDatagram(f.fd, b)
	if errors.Is(err, unix.ECONNREFUSED) {
		// An ICMP port-unreachable for an earlier datagram, reported by this call instead of
		// sending: count it and send again.
		w.countError(err)
		err = sendDatagram(f.fd, b)
	}
	switch {
	case err == nil:
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOBUFS):
		// The socket's send buffer is full (ENOBUFS: the device queue behind it): wait until it
		// drains rather than retry in a spin. EAGAIN is flow control and not counted.
		if errors.Is(err, unix.ENOBUFS) {
			w.countError(err)
		}
		f.blocked = true
		out := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(f.index)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, f.fd, &out); err != nil {
			w.flowFailed(f, fmt.Errorf("epoll_ctl mod fd %d: %w", f.fd, err))
		}
		return false
	default:
		w.flowFailed(f, err)
		return false
	}
	f.push(udpPending{seq: f.nextSeq, sentAt: now, intended: intended, size: uint32(size)})
	w.inFlight++
	f.nextSeq++
	if f.sizeIdx++; f.sizeIdx == len(w.sh.cfg.Sizes) {
		f.sizeIdx = 0
	}
	w.st.totalSent += uint64(size)
	w.udp.datagramsSent++
	return true
}

// sendDatagram is sockutil.SendNonblock for a datagram that may be empty, which that call does not
// take (it has no first byte to point at): sendto(2) with MSG_NOSIGNAL, retried on EINTR.
func sendDatagram(fd int, b []byte) error {
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		if errno == unix.EINTR {
			continue // interrupted before anything was sent
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// flowFailed counts an error no retry can cure and gives the flow up: its socket is closed, and
// what it had in flight counts as timed out.
func (w *udpWorker) flowFailed(f *udpFlow, err error) {
	w.countError(err)
	for f.count > 0 {
		p := *f.front()
		f.remove(0)
		w.inFlight--
		w.timedOut(f, p)
	}
	unix.Close(f.fd) // closing also takes it out of the epoll set
	f.fd = -1
	f.dead = true
	w.open--
}

func (w *udpWorker) countError(err error) {
	w.st.ioErrors[errnoName(err)]++
	w.newErrors++
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

// publish makes the running totals visible to Run's progress line.
func (w *udpWorker) publish() {
	w.live.established.Store(int64(w.open))
	if w.newMessages != 0 {
		w.live.messages.Add(w.newMessages)
		w.live.bytes.Add(w.newBytes)
		w.newMessages, w.newBytes = 0, 0
	}
	if w.newErrors != 0 {
		w.live.errors.Add(w.newErrors)
		w.newErrors = 0
	}
}
