package loadgen

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"echobench/internal/sockutil"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Why event loops and not a goroutine per connection: the meter must not be the bottleneck. With
// one core for the client, a goroutine per connection pays for a netpoller wakeup, a goroutine
// switch and the runtime's syscall bookkeeping for every read, and 1,000 goroutines' stacks and
// timers; an event loop pays one epoll_wait for a batch of ready sockets, then one read and one
// write per echoed message. Measured on this machine (README.md, "Engine choice"), against the
// same server pinned to the other core, the loop moved more messages per second for less CPU.
//
// Each worker owns its sockets, an epoll instance, a timerfd for the open-loop schedule and an
// eventfd through which Run wakes it. It runs on a locked OS thread that it never unlocks, so the
// thread exits with the goroutine, unless that thread is the process's main thread, which the Go
// runtime cannot end and instead parks for good (waitThreadsGone).

const (
	// connectsInFlight bounds the non-blocking connects one run has outstanding during the initial
	// ramp, so an as-fast-as-possible ramp does not overflow the server's SYN or accept backlog
	// and turn into retransmitted SYNs that look like slow connects.
	connectsInFlight = 128
	// connectTimeout fails a connect that has not completed (the kernel would keep retrying SYNs
	// for about two minutes).
	connectTimeout = 10 * time.Second
	// connectScanInterval is how often connects in flight are checked against connectTimeout.
	connectScanInterval = 100 * time.Millisecond
	// reconnectBackoff and maxReconnectFailures govern a slot whose reconnect failed (Reconnect
	// mode): it retries a few times, then is given up on, so a dead server ends the run.
	reconnectBackoff     = 10 * time.Millisecond
	maxReconnectFailures = 5
	// drainTimeout bounds how long the end of a run waits for the echoes still in flight, so the
	// sockets close without unread data (which would reset them) and the byte totals can be
	// compared with the server's.
	drainTimeout = 500 * time.Millisecond
	// readBufferSize is the worker's one read buffer; a read that fills it is followed by another.
	readBufferSize = 256 << 10
	// frameBufferSize is the scratch space frames are encoded into before a write.
	frameBufferSize = 64 << 10
	// spinThreshold: a deadline closer than this is waited for by polling epoll without sleeping,
	// because arming the timerfd and being woken would overshoot it.
	spinThreshold = 20 * time.Microsecond
	// eventBatch is how many epoll events one epoll_wait returns at most.
	eventBatch = 512

	tokenTimer = -1 // epoll data of the timerfd
	tokenWake  = -2 // epoll data of the eventfd
)

// shared is the state Run and its workers share. Workers only read it, apart from the channels.
type shared struct {
	cfg      Config
	addr     func() unix.Sockaddr // a fresh copy per worker: unix.Connect writes into its Sockaddr
	family   int
	clock    measureClock
	interval int64 // open loop: ns between one connection's intended sends

	// measureStart and measureEnd are 0 until the initial ramp is over; then Run stores End first
	// and Start second, so a worker that sees Start also sees End.
	measureStart atomic.Int64
	measureEnd   atomic.Int64
	stop         atomic.Bool   // ctx was cancelled
	rampDone     chan struct{} // one send per worker when its initial connects have resolved
}

// liveCounters are a worker's running totals for the progress line, published once per loop
// iteration.
type liveCounters struct {
	established atomic.Int64
	messages    atomic.Uint64
	bytes       atomic.Uint64
	errors      atomic.Uint64
	_           [32]byte // keep the next worker's counters off this cache line
}

// workerStats is what a worker measured; Run reads it after the worker has exited.
type workerStats struct {
	latency, uncorrected, connectLatency *hdrhistogram.Histogram
	scheduleLag                          *hdrhistogram.Histogram // open loop only
	seconds                              []secondStats

	messages, bytes, verifyFailures, reconnects uint64
	verifyFailuresTotal, incomplete             uint64
	established, failed                         int
	slotsEchoed                                 int // slots with an echo completed in the window
	connectErrors, ioErrors                     map[string]int
	totalSent, totalReceived, totalMessages     uint64

	firstConnect, lastEstablished int64 // initial ramp; 0 when none
	windowEnd                     int64 // when this worker stopped counting
	allDead                       bool  // it stopped because every one of its slots had died
	err                           error // a failure of the loop itself (epoll_wait)
}

type secondStats struct {
	messages, bytes uint64
	latency         *hdrhistogram.Histogram // for the second's p99; coarser than the totals
}

// worker is one event loop and the connection slots it owns.
type worker struct {
	sh      *shared
	tid     int // the loop's OS thread, which Run waits to see gone
	addr    unix.Sockaddr
	sources []unix.SockaddrInet4 // this worker's copies of the source addresses (Config.Sources)
	epfd    int
	timerfd int
	wakefd  int
	events  []unix.EpollEvent
	conns   []conn
	readBuf []byte
	encoded []byte

	nextConnect   int // index in conns of the next slot of the initial ramp
	maxConnecting int
	connecting    int
	unresolved    int // slots of the initial ramp not yet connected or failed
	rampReported  bool
	retries       []*conn // slots waiting to retry a failed reconnect
	echoed        []*conn // connections that got echoes in this epoll batch, to refill after it
	open          int     // established sockets
	sendQueue     sendQueue
	armedFor      int64 // deadline the timerfd is armed for; 0 when disarmed
	lastScan      int64

	measureStart, measureEnd int64
	stopping                 bool
	stoppedAt                int64
	drainUntil               int64

	st   workerStats
	live *liveCounters
	// the current consume call's completions, and their latency samples not yet recorded
	done                                  completions
	runLatency, runUncorrected, runSecond sampleRun
	// unpublished progress since the last publish
	newMessages, newBytes, newErrors uint64
}

func newWorker(sh *shared, slots []int, maxConnecting int, live *liveCounters) (*worker, error) {
	w := &worker{
		sh:            sh,
		addr:          sh.addr(),
		sources:       sourceAddrs(sh.cfg.Sources),
		epfd:          -1,
		timerfd:       -1,
		wakefd:        -1,
		events:        make([]unix.EpollEvent, eventBatch),
		readBuf:       make([]byte, readBufferSize),
		maxConnecting: maxConnecting,
		unresolved:    len(slots),
		live:          live,
	}
	if sh.cfg.Frame {
		w.encoded = make([]byte, frameBufferSize)
	}
	w.st = workerStats{
		latency:        NewHistogram(),
		connectLatency: NewHistogram(),
		connectErrors:  map[string]int{},
		ioErrors:       map[string]int{},
	}
	if sh.cfg.Rate > 0 {
		w.st.uncorrected = NewHistogram()
		w.st.scheduleLag = NewHistogram()
	}
	w.conns = make([]conn, len(slots))
	for i, slot := range slots {
		w.conns[i] = conn{index: i, slot: slot, fd: -1, queuePos: -1, inflight: make([]message, sh.cfg.Pipeline)}
	}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if w.timerfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	if w.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	for _, fd := range []struct{ fd, token int }{{w.timerfd, tokenTimer}, {w.wakefd, tokenWake}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd.token)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd.fd, &ev); err != nil {
			w.closeFDs()
			return nil, fmt.Errorf("epoll_ctl add fd %d: %w", fd.fd, err)
		}
	}
	return w, nil
}

// closeFDs closes the worker's own descriptors. Run calls it after the worker has exited, because
// Run may write to wakefd until then.
func (w *worker) closeFDs() {
	for _, fd := range []*int{&w.epfd, &w.timerfd, &w.wakefd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// wake interrupts the worker's epoll_wait. Run calls it from another goroutine.
func (w *worker) wake() {
	one := [8]byte{1}
	// EAGAIN means the counter is already non-zero: the worker will wake anyway.
	unix.Write(w.wakefd, one[:])
}

// run is the event loop: wait, then read, complete, send, connect, in data-flow order.
func (w *worker) run() {
	runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
	w.tid = unix.Gettid()
	defer w.closeAllConns()
	for {
		now := w.sh.clock.now()
		w.observeWindow(now)
		w.serviceTimers(now)
		w.publish()
		if w.finished(now) {
			return
		}
		n, err := unix.EpollWait(w.epfd, w.events, w.armTimer())
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue // a signal arrived; nothing is lost, wait again
			}
			w.st.err = fmt.Errorf("epoll_wait: %w", err)
			w.stop(w.sh.clock.now())
			return
		}
		for i := range n {
			w.dispatch(w.events[i])
		}
		// Echoes are read for the whole batch first and the next messages written after, rather
		// than each connection's next message right after its echo. A server that keeps up
		// sleeps in epoll_wait between two of our writes, and the write that arrives then must
		// wake it: on this VM an inter-processor interrupt and a reschedule, paid on our core.
		// A burst of writes finds the server awake after the first. Measured at 1,000
		// connections × 64 B against the epoll model: the server's voluntary context switches
		// fell from 17,400 to 2,600-7,000 per run and msgs/s rose 10 to 15 %, the server's core
		// busier (93-98 %). Each message's send time is taken when it is queued here, so the
		// wait for the rest of the batch is not counted as the server's latency; in open loop
		// the intended time counts it, as it should.
		for _, c := range w.echoed {
			w.afterEchoes(c, w.sh.clock.now())
		}
		w.echoed = w.echoed[:0]
	}
}

// dispatch handles one epoll event.
func (w *worker) dispatch(ev unix.EpollEvent) {
	switch ev.Fd {
	case tokenTimer:
		var ticks [8]byte
		unix.Read(w.timerfd, ticks[:]) // clears the level-triggered readiness; EAGAIN is harmless
		w.armedFor = 0
		return
	case tokenWake:
		var count [8]byte
		unix.Read(w.wakefd, count[:])
		return
	}
	c := &w.conns[ev.Fd]
	if uint32(ev.Pad) != c.gen || c.fd < 0 {
		return // the socket this event was for has been closed since
	}
	if c.state == stateConnecting {
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			w.finishConnect(c)
		}
		return
	}
	if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		w.readable(c, ev.Events)
		if c.state != stateOpen {
			return
		}
	}
	if ev.Events&unix.EPOLLOUT != 0 && c.sent < c.queued {
		w.flush(c)
	}
}

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

// sourceAddrs returns n source addresses, 127.0.0.2 upward, for one worker: unix.Bind writes into
// the Sockaddr it is given, so workers must not share them. 127.0.0.1 is left out so that a
// single-source run and a spread one never share a source address.
func sourceAddrs(n int) []unix.SockaddrInet4 {
	addrs := make([]unix.SockaddrInet4, n)
	for i := range addrs {
		addrs[i].Addr = [4]byte{127, 0, 0, byte(2 + i)}
	}
	return addrs
}

// publish makes the running totals visible to Run's progress line.
func (w *worker) publish() {
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

// startConnect opens a socket for slot c and starts a non-blocking connect.
func (w *worker) startConnect(c *conn, now int64) {
	fd, err := unix.Socket(w.sh.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		// EMFILE or ENFILE: this process or the system is out of descriptors.
		w.connectFailed(c, err, now)
		return
	}
	// Small messages must leave at once even while earlier ones are unacknowledged (Pipeline > 1);
	// Nagle would hold them back and measure the delayed-ACK timer instead of the server.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		w.connectFailed(c, err, now)
		return
	}
	if len(w.sources) > 0 {
		// IP_BIND_ADDRESS_NO_PORT leaves the port to connect, which picks one that is free for
		// this destination; a bind that picked the port itself would need it free for every one.
		err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err == nil {
			err = unix.Bind(fd, &w.sources[c.slot%len(w.sources)])
		}
		if err != nil {
			unix.Close(fd)
			w.connectFailed(c, err, now)
			return
		}
	}
	c.fd = fd
	c.gen++
	c.connectAt = now
	c.state = stateConnecting
	w.connecting++
	err = unix.Connect(fd, w.addr)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EINTR) {
		// EINTR on a non-blocking connect still leaves it in progress, like EINPROGRESS.
		// Anything else (ECONNREFUSED on loopback, EADDRNOTAVAIL when ephemeral ports run out)
		// is final.
		w.connectFailed(c, err, now)
		return
	}
	// Edge-triggered, and registered once for both directions: EPOLLOUT reports the connect's
	// completion and later a send buffer with room again; EPOLLIN reports echoes. No epoll_ctl is
	// needed to arm or disarm writing, and a loop that has nothing to write simply ignores the
	// EPOLLOUT bit. Every edge is acted on: reads go until a short read, writes until done or
	// EAGAIN.
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(c.index),
		Pad:    int32(c.gen),
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.connectFailed(c, fmt.Errorf("epoll_ctl add fd %d: %w", fd, err), now)
	}
}

// finishConnect handles the completion of a non-blocking connect.
func (w *worker) finishConnect(c *conn) {
	now := w.sh.clock.now()
	soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = unix.Errno(soerr)
	}
	if err != nil {
		w.connectFailed(c, err, now)
		return
	}
	w.connecting--
	w.open++
	w.st.established++
	recordMicros(w.st.connectLatency, now-c.connectAt)
	c.state = stateOpen
	c.failures = 0
	if !c.everOpen {
		c.everOpen = true
		w.unresolved--
		w.st.lastEstablished = now
	} else if w.inWindow(now) {
		w.st.reconnects++
	}
	c.resetStream(w.sh.cfg.Conns)
	if w.sh.cfg.Rate > 0 && !c.scheduled {
		// Stagger the schedules across connections so that they do not all send at once.
		c.scheduled = true
		c.nextSend = now + w.sh.interval*int64(c.slot)/int64(w.sh.cfg.Conns)
	}
	w.fill(c, now)
	w.flush(c)
}

// connectFailed counts a failed connect and decides the slot's fate: a slot of the initial ramp
// is given up on; a reconnecting slot retries a few times after a pause.
func (w *worker) connectFailed(c *conn, err error, now int64) {
	w.st.failed++
	w.st.connectErrors[errnoName(err)]++
	w.newErrors++
	if c.fd >= 0 {
		unix.Close(c.fd) // also removes it from the epoll set
		c.fd = -1
	}
	if c.state == stateConnecting {
		w.connecting--
	}
	c.incarnation++
	if !c.everOpen {
		w.unresolved--
		c.state = stateDead
		return
	}
	c.failures++
	if w.stopping || c.failures >= maxReconnectFailures {
		c.state = stateDead
		return
	}
	c.state = stateIdle
	c.retryAt = now + int64(reconnectBackoff)
	w.retries = append(w.retries, c)
}

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
	if w.canQueue(c) {
		// c may be queued already, with the nextSend it had before the loop above moved it on
		// (an echo that freed a slot after its send came due): its place must follow.
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
		n, err := sockutil.ReadNonblock(c.fd, w.readBuf)
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
		now := w.sh.clock.now()
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

// complete records the front message of c, whose last byte arrived at w.done.now.
func (w *worker) complete(c *conn) {
	m := c.front()
	d := &w.done
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
	c.popFront()
}

// sampleRun is a run of equal latency samples bound for one histogram, not yet recorded. A
// pipelined connection's messages are queued in one fill and complete in one read, so they share
// one latency value, and RecordValues(v, n) records n of them for the cost of one: the histogram
// ends up exactly as if each had been recorded alone.
type sampleRun struct {
	h      *hdrhistogram.Histogram
	us     int64 // the run's value, in h's unit
	lastNS int64 // the last sample's latency in ns, which the common case compares against
	n      int64
}

// add appends a sample of ns nanoseconds for h, recording the run so far first if it is for
// another histogram or value. The common case, the very same ns as the previous sample, is kept
// small enough for the compiler to inline. It needs no check that a run is open: after a flush, h
// and lastNS still describe the value us holds, so a matching sample correctly starts a run of 1.
func (r *sampleRun) add(h *hdrhistogram.Histogram, ns int64) {
	if r.lastNS == ns && r.h == h {
		r.n++
		return
	}
	r.addSlow(h, ns)
}

// addSlow is add for a sample whose ns differs from the previous one: it may still round to the
// run's microsecond, and otherwise starts a new run.
func (r *sampleRun) addSlow(h *hdrhistogram.Histogram, ns int64) {
	us := clampMicros(h, ns)
	r.lastNS = ns
	if r.n > 0 && r.us == us && r.h == h {
		r.n++
		return
	}
	r.flush()
	r.h, r.us, r.n = h, us, 1
}

// flush records the run, if any.
func (r *sampleRun) flush() {
	if r.n > 0 {
		r.h.RecordValues(r.us, r.n)
		r.n = 0
	}
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
	w.publish()
}

// recordMicros records a latency of ns nanoseconds in microseconds, clamped to the histogram's
// range so an outlier is counted rather than dropped.
func recordMicros(h *hdrhistogram.Histogram, ns int64) {
	h.RecordValue(clampMicros(h, ns))
}

// clampMicros converts ns nanoseconds to whole microseconds within h's range.
func clampMicros(h *hdrhistogram.Histogram, ns int64) int64 {
	return min(max(ns/1000, 0), h.HighestTrackableValue())
}

// newSecondHistogram is the per-second latency histogram: two significant digits are plenty for a
// p99 plotted over time, and it is an eighth the size of a full one.
func newSecondHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 100_000_000, 2)
}

var (
	errEOF         = errors.New("EOF")
	errUnsolicited = errors.New("UNSOLICITED")
	errFrame       = errors.New("FRAME")
)
