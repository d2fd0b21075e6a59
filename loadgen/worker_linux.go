package loadgen

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Why event loops and not a goroutine per connection: the meter must not be the bottleneck. With
// one core for the client, a goroutine per connection pays for a netpoller wakeup, a goroutine
// switch and the runtime's syscall bookkeeping for every read, and 1,000 goroutines' stacks and
// timers; an event loop pays one epoll_wait for a batch of ready sockets, then one read and one
// write per echoed message. Measured against the same server pinned to the other core (README.md,
// "Engine choice"), the loop moved more messages per second for less CPU.
//
// Each worker owns its sockets, an epoll instance and an eventfd through which Run wakes it; the
// open-loop schedule is kept by epoll_pwait2's nanosecond timeout (timers_linux.go). It runs on a
// locked OS thread that it never unlocks, so the thread exits with the goroutine, unless that
// thread is the process's main thread, which the Go runtime cannot end and instead parks for good
// (waitThreadsGone).

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
	// eventBatch is how many epoll events one epoll_wait returns at most.
	eventBatch = 512

	tokenWake = -2 // epoll data of the eventfd
)

// shared is the state Run and its workers share. Workers only read it, apart from the channels.
type shared struct {
	cfg      Config
	addr     func() unix.Sockaddr // a fresh copy per worker: unix.Connect writes into its Sockaddr
	family   int
	clock    measureClock
	interval int64 // open loop: ns between one connection's intended sends
	harvest  bool  // harvest mode (harvest_linux.go): wake for sends only, time echoes by the kernel
	// monoOffset is CLOCK_MONOTONIC minus the engine's clock, in ns: harvest mode's sleeps take
	// absolute deadlines (sleepUntil).
	monoOffset int64

	// measureStart and measureEnd are 0 until the initial ramp is over; then Run stores End first
	// and Start second, so a worker that sees Start also sees End.
	measureStart atomic.Int64
	measureEnd   atomic.Int64
	windowLate   time.Duration // how much later than Config.StartAt+Warmup the window opened; drive's alone
	stop         atomic.Bool   // ctx was cancelled
	rampDone     chan struct{} // one send per worker when its initial connects have resolved

	// With Config.Messages, messagesLeft is how many completions the window may still count; the
	// worker that counts the last stores its time in fullAt and sends on full, so that Run wakes
	// the other workers to stop.
	messagesLeft atomic.Int64
	fullAt       atomic.Int64
	full         chan struct{}
}

// liveCounters are a worker's running totals for the progress line, published every
// publishInterval.
type liveCounters struct {
	established atomic.Int64
	messages    atomic.Uint64
	bytes       atomic.Uint64
	errors      atomic.Uint64
	_           [32]byte // keep the next worker's counters off this cache line
}

// worker is one event loop and the connection slots it owns.
type worker struct {
	sh      *shared
	tid     int // the loop's OS thread, which Run waits to see gone
	addr    unix.Sockaddr
	sources []unix.SockaddrInet4 // this worker's copies of the source addresses (Config.Sources)
	epfd    int
	wakefd  int
	events  []unix.EpollEvent
	conns   []conn
	readBuf []byte
	encoded []byte

	nextConnect   int // index in conns of the next slot of the initial ramp
	maxConnecting int
	// timedOutInARow counts initial connects that timed out since the last one that completed.
	timedOutInARow int
	connecting     int
	unresolved     int // slots of the initial ramp not yet connected or failed
	rampReported   bool
	retries        []*conn // slots waiting to retry a failed reconnect
	echoed         []*conn // connections that got echoes in this epoll batch, to refill after it
	open           int     // established sockets
	sendQueue      sendQueue
	waitFor        unix.Timespec // epoll_pwait2's timeout or sleepUntil's deadline, here so not allocated
	stamped        stampedReader // harvest mode's recvmsg buffers
	lastScan       int64
	publishAt      int64 // when publish next makes the running totals visible

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
		w.conns[i] = conn{index: i, slot: slot, fd: -1}
		w.conns[i].setWindow(sh.cfg.Pipeline)
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
	return w, nil
}

// closeFDs closes the worker's own descriptors. Run calls it after the worker has exited, because
// Run may write to wakefd until then.
func (w *worker) closeFDs() {
	for _, fd := range []*int{&w.epfd, &w.wakefd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// wake interrupts the worker's epoll_wait. Run calls it from another goroutine.
func (w *worker) threadID() int       { return w.tid }
func (w *worker) stats() *workerStats { return &w.st }

func (w *worker) wake() {
	one := [8]byte{1}
	// EAGAIN means the counter is already non-zero: the worker will wake anyway.
	unix.Write(w.wakefd, one[:])
}

// run is the event loop: wait, then read, complete, send, connect, in data-flow order.
func (w *worker) run() {
	runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
	w.tid = unix.Gettid()
	preciseTimeouts()
	defer w.closeAllConns()
	for {
		now := w.sh.clock.now()
		w.observeWindow(now)
		w.serviceTimers(now)
		w.publish(now)
		if w.finished(now) {
			return
		}
		var timeout *unix.Timespec
		if next := w.nextDeadline(); w.sleepOnly(next, now) {
			// Harvest mode: the next send is near, so sleep on the clock alone and collect the
			// echoes that arrived meanwhile when it is due, instead of waking for each of them.
			// The sends that fell due go out first: harvesting first would make each of them
			// late by the reads. A connection whose turn came with its echo unread is dropped
			// from the queue by serviceTimers, and the harvest's refill sends it (afterEchoes).
			w.sleepUntil(next)
			w.waitFor = unix.Timespec{}
			timeout = &w.waitFor
			now := w.sh.clock.now()
			w.observeWindow(now)
			w.serviceTimers(now)
		} else {
			timeout = w.timeout(next)
		}
		n, err := epollWait(w.epfd, w.events, timeout)
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
		for i := range n {
			w.dispatch(w.events[i])
		}
		// Echoes are read for the whole batch first and the next messages written after, rather
		// than each connection's next message right after its echo. A server that keeps up
		// sleeps in epoll_wait between two of our writes, and the write that arrives then must
		// wake it: an inter-processor interrupt and a reschedule, paid on our core. A burst of
		// writes finds the server awake after the first (README.md, "Engine choice", has the
		// measurement). Each message's send time is taken when it is queued here, so the wait
		// for the rest of the batch is not counted as the server's latency; in open loop the
		// intended time counts it, as it should.
		for _, c := range w.echoed {
			w.afterEchoes(c, w.sh.clock.now())
		}
		w.echoed = w.echoed[:0]
	}
}

// dispatch handles one epoll event.
func (w *worker) dispatch(ev unix.EpollEvent) {
	if ev.Fd == tokenWake {
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

// publishInterval is how often a worker makes its running totals visible. Run's progress line
// reads them once a second, and a publish is atomic writes to a cache line that Run's goroutine
// reads: once per wake, they were a visible share of the loop's own time.
const publishInterval = 10 * time.Millisecond

// publish makes the running totals visible to Run's progress line, if publishInterval has passed
// since it last did.
func (w *worker) publish(now int64) {
	if now < w.publishAt {
		return
	}
	w.publishAt = now + int64(publishInterval)
	w.publishNow()
}

// publishNow makes the running totals visible to Run's progress line.
func (w *worker) publishNow() {
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
