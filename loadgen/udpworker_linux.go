package loadgen

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
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
			f.phase = slotPhase(slot, cfg.Conns, sh.interval)
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
func (w *udpWorker) threadID() int       { return w.tid }
func (w *udpWorker) stats() *workerStats { return &w.st }

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
		_, _, errno := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
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
