package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressInterval is how often Config.Progress is called.
const progressInterval = time.Second

// run starts the workers, starts the measured window once the initial ramp is over, reports
// progress, and merges what the workers measured.
func run(ctx context.Context, cfg Config) (*Result, error) {
	sh, err := newShared(cfg)
	if err != nil {
		return nil, err
	}
	sh.harvest = harvestMode(&sh.cfg)
	if sh.harvest {
		if sh.monoOffset, err = monotonicOffset(sh.clock); err != nil {
			return nil, err
		}
	}
	defer spareP(cfg.Workers)()

	live := make([]liveCounters, cfg.Workers)
	workers := make([]*worker, 0, cfg.Workers)
	defer func() {
		for _, w := range workers {
			w.closeFDs()
		}
	}()
	for i := range cfg.Workers {
		w, err := newWorker(sh, slotsOf(i, cfg), max(connectsInFlight/cfg.Workers, 1), &live[i])
		if err != nil {
			return nil, fmt.Errorf("loadgen: worker %d: %w", i, err)
		}
		workers = append(workers, w)
	}

	interrupted := drive(ctx, sh, asEngineWorkers(workers), live)
	res, errs := collect(sh, asEngineWorkers(workers))
	// Interruption comes first: a run cancelled during the ramp has established nothing, and
	// "is the server running?" would send its user looking in the wrong place.
	switch {
	case interrupted:
		errs = append(errs, fmt.Errorf("loadgen: run interrupted after %v of the measured window: %w", res.Elapsed, ctx.Err()))
	case res.Established == 0:
		errs = append(errs, fmt.Errorf("loadgen: no connection to %s could be established (%s); is the server running?", cfg.Addr, countsString(res.ConnectErrors)))
	case res.ServerGone:
		errs = append(errs, fmt.Errorf("loadgen: every connection to %s failed mid-run (%s); the server died or reset them all", cfg.Addr, countsString(res.IOErrors)))
	}
	return res, errors.Join(errs...)
}

// newShared is the state every worker of a run shares, with the target resolved and the open
// loop's per-connection interval set.
func newShared(cfg Config) (*shared, error) {
	sh := &shared{cfg: cfg, clock: measureClock{base: time.Now()}, rampDone: make(chan struct{}, cfg.Workers), full: make(chan struct{}, 1)}
	sh.messagesLeft.Store(int64(cfg.Messages))
	if err := sh.resolve(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Rate > 0 {
		sh.interval = max(int64(float64(cfg.Conns)*float64(time.Second)/float64(cfg.Rate)), 1)
	}
	return sh, nil
}

// spareP gives the run one P more than it has workers, and returns what puts GOMAXPROCS back.
//
// Each worker's thread holds a P while it sleeps in epoll_pwait2, which the runtime sees as a
// blocking syscall. The runtime leaves such a P alone only while another P is idle; without
// one (GOMAXPROCS 1 with one worker, as -client-cpus 1 sets it) sysmon takes it away from
// every wait longer than its tick and hands it to another thread, and the wait's return has
// to get one back: futex wakes, sysmon's nanosleeps at its busiest rate, and another thread
// competing for the client's CPU at the moment the worker should send. One spare P keeps the
// workers' Ps theirs, and it runs Run's and the caller's goroutines (progress, CPU sampling).
func spareP(workers int) (restore func()) {
	procs := runtime.GOMAXPROCS(0)
	if procs > workers {
		return func() {}
	}
	runtime.GOMAXPROCS(workers + 1)
	return func() { runtime.GOMAXPROCS(procs) }
}

// slotsOf is worker i's share of the connection slots: every Workers-th, from i.
func slotsOf(i int, cfg Config) []int {
	var slots []int
	for s := i; s < cfg.Conns; s += cfg.Workers {
		slots = append(slots, s)
	}
	return slots
}

// engineWorker is what drive and collect need of a worker, TCP or UDP: one event loop on its own
// locked thread.
type engineWorker interface {
	run()
	wake()
	threadID() int // 0 until run has started
	stats() *workerStats
}

func asEngineWorkers[W engineWorker](ws []W) []engineWorker {
	out := make([]engineWorker, len(ws))
	for i, w := range ws {
		out[i] = w
	}
	return out
}

// drive runs the workers until every one has returned: it opens the measured window once all of
// them have finished their initial ramp, wakes them when the window is due to close early
// (Config.Messages) or the run is cancelled, and reports progress. It returns whether ctx ended
// the run, once every worker's thread has exited.
func drive(ctx context.Context, sh *shared, workers []engineWorker, live []liveCounters) (interrupted bool) {
	if at := sh.cfg.StartAt; !at.IsZero() {
		select {
		case <-time.After(time.Until(at)):
		case <-ctx.Done():
			return true
		}
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.run)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	wakeAll := func() {
		for _, w := range workers {
			w.wake()
		}
	}
	ticker := time.NewTicker(progressInterval)
	defer ticker.Stop()
	cancelled := ctx.Done()
	ramped := 0
wait:
	for {
		select {
		case <-done:
			break wait
		case <-cancelled:
			interrupted = true
			cancelled = nil
			sh.stop.Store(true)
			wakeAll()
		case <-sh.rampDone:
			ramped++
			if ramped == len(workers) {
				start := sh.clock.now() + int64(sh.cfg.Warmup)
				if at := sh.cfg.StartAt; !at.IsZero() {
					// Open the window when every agent given this StartAt opens its own.
					want := int64(at.Add(sh.cfg.Warmup).Sub(sh.clock.base))
					start = max(want, sh.clock.now())
					sh.windowLate = time.Duration(start - want)
				}
				sh.measureEnd.Store(start + int64(sh.cfg.Duration))
				sh.measureStart.Store(start)
				wakeAll()
			}
		case <-sh.full:
			wakeAll()
		case <-ticker.C:
			if sh.cfg.Progress != nil {
				sh.cfg.Progress(sh.progress(live))
			}
		}
	}
	tids := make([]int, len(workers))
	for i, w := range workers {
		tids[i] = w.threadID()
	}
	waitTIDsGone(tids)
	return interrupted
}

// collect merges what the workers measured and returns it with the errors they ended on.
func collect(sh *shared, workers []engineWorker) (*Result, []error) {
	stats := make([]*workerStats, len(workers))
	var errs []error
	for i, w := range workers {
		stats[i] = w.stats()
		if err := w.stats().err; err != nil {
			errs = append(errs, fmt.Errorf("loadgen: worker %d: %w", i, err))
		}
	}
	return merge(sh, stats), errs
}

// threadExitTimeout bounds the wait for the workers' threads to exit.
const threadExitTimeout = time.Second

// waitTIDsGone waits until the OS threads tids (0: never started) have exited. A worker's goroutine has
// returned by now, and a goroutine that returns while locked to its thread takes the thread with
// it, but the thread's exit completes a moment after the goroutine's last deferred call; Run
// promises that no engine thread outlives it. The one exception is the process's main thread
// (tid == pid): if a worker happened to be scheduled there, the runtime cannot end that thread and
// parks it for good instead, idle and never running Go code again, so there is nothing to wait for.
func waitTIDsGone(tids []int) {
	deadline := time.Now().Add(threadExitTimeout)
	pid := os.Getpid()
	for _, tid := range tids {
		if tid == 0 || tid == pid {
			continue
		}
		path := fmt.Sprintf("/proc/self/task/%d", tid)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(path); err != nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// resolve turns the target address into a socket address once, so connects do no lookups.
func (sh *shared) resolve(addr string) error {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("loadgen: resolve %s: %w", addr, err)
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		sa := unix.SockaddrInet4{Port: ta.Port}
		copy(sa.Addr[:], ip4)
		sh.addr = func() unix.Sockaddr { c := sa; return &c }
		sh.family = unix.AF_INET
		if n := sh.cfg.Sources; n > 0 {
			if !ip4.IsLoopback() {
				return fmt.Errorf("loadgen: %d source addresses are 127.0.0.x, which cannot reach %s; use Sources 0", n, addr)
			}
			if n > MaxSources {
				return fmt.Errorf("loadgen: %d source addresses; at most %d (127.0.0.2 to 127.0.0.254)", n, MaxSources)
			}
		}
		return nil
	}
	if sh.cfg.Sources > 0 {
		return fmt.Errorf("loadgen: source addresses are IPv4 loopback ones, and %s is not; use Sources 0", addr)
	}
	if ta.IP == nil {
		return fmt.Errorf("loadgen: address %s has no host; use 127.0.0.1:PORT", addr)
	}
	sa := unix.SockaddrInet6{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To16())
	sh.addr = func() unix.Sockaddr { c := sa; return &c }
	sh.family = unix.AF_INET6
	return nil
}

func (sh *shared) progress(live []liveCounters) Progress {
	now := sh.clock.now()
	start := sh.measureStart.Load()
	p := Progress{Elapsed: time.Duration(now), Measuring: start != 0 && now >= start}
	for i := range live {
		p.Established += int(live[i].established.Load())
		p.Messages += live[i].messages.Load()
		p.Bytes += live[i].bytes.Load()
		p.Errors += live[i].errors.Load()
	}
	return p
}

// merge adds up what the workers measured (the TCP engine's and the UDP engine's alike). Workers
// have exited, so their stats are quiescent.
func merge(sh *shared, stats []*workerStats) *Result {
	res := &Result{
		ConnectErrors:  map[string]int{},
		IOErrors:       map[string]int{},
		Latency:        NewHistogram(),
		ConnectLatency: NewHistogram(),
		ServerGone:     true,
		WindowLate:     sh.windowLate,
	}
	closedLoop := sh.cfg.Rate == 0
	if !closedLoop {
		res.Uncorrected = NewHistogram()
		res.ScheduleLag = NewHistogram()
	}
	measureStart := sh.measureStart.Load()
	var firstConnect, lastEstablished int64
	var seconds []secondStats
	for _, st := range stats {
		res.Established += st.established
		res.ConnsEchoed += st.slotsEchoed
		res.Failed += st.failed
		for k, v := range st.connectErrors {
			res.ConnectErrors[k] += v
		}
		for k, v := range st.ioErrors {
			res.IOErrors[k] += v
		}
		res.Messages += st.messages
		res.Bytes += st.bytes
		res.VerifyFailures += st.verifyFailures
		res.VerifyFailuresTotal += st.verifyFailuresTotal
		res.Incomplete += st.incomplete
		res.Reconnects += st.reconnects
		res.TotalSent += st.totalSent
		res.TotalReceived += st.totalReceived
		res.KernelTimed += st.kernelTimed
		res.Latency.Merge(st.latency)
		res.ConnectLatency.Merge(st.connectLatency)
		if st.uncorrected != nil {
			res.Uncorrected.Merge(st.uncorrected)
		}
		if st.scheduleLag != nil {
			res.ScheduleLag.Merge(st.scheduleLag)
		}
		res.ServerGone = res.ServerGone && st.allDead
		if st.firstConnect != 0 && (firstConnect == 0 || st.firstConnect < firstConnect) {
			firstConnect = st.firstConnect
		}
		lastEstablished = max(lastEstablished, st.lastEstablished)
		if measureStart != 0 {
			res.Elapsed = max(res.Elapsed, time.Duration(st.windowEnd-measureStart))
		}
		for i, s := range st.seconds {
			if i >= len(seconds) {
				seconds = append(seconds, secondStats{latency: newSecondHistogram()})
			}
			seconds[i].messages += s.messages
			seconds[i].bytes += s.bytes
			seconds[i].latency.Merge(s.latency)
		}
	}
	if res.Established == 0 {
		res.ServerGone = false // it never came; that is a connect failure, not a death mid-run
	}
	res.Elapsed = min(res.Elapsed, sh.cfg.Duration)
	if measureStart != 0 && res.Elapsed > 0 {
		// The engine's clock counts from base, a wall-clock reading, so the window converts
		// exactly. It ends where counting stopped, before the drain and the teardown.
		res.WindowStart = sh.clock.base.Add(time.Duration(measureStart))
		res.WindowEnd = res.WindowStart.Add(res.Elapsed)
	}
	if lastEstablished > firstConnect {
		res.RampUp = time.Duration(lastEstablished - firstConnect)
	}
	if closedLoop {
		// Without a schedule the intended send is the actual send: the two are the same.
		res.Uncorrected = NewHistogram()
		res.Uncorrected.Merge(res.Latency)
	}
	// One entry for every second the window touched, so a second in which nothing completed (a
	// stalled server) shows as a zero rather than vanishing from the end of the list.
	n := int((res.Elapsed + time.Second - 1) / time.Second)
	for len(seconds) < n {
		seconds = append(seconds, secondStats{latency: newSecondHistogram()})
	}
	res.PerSecond = make([]Second, len(seconds))
	for i, s := range seconds {
		res.PerSecond[i] = Second{Messages: s.messages, Bytes: s.bytes, P99us: float64(s.latency.ValueAtQuantile(99)), Latency: s.latency}
	}
	return res
}

// countsString renders an errno count map for an error message, most frequent first.
func countsString(counts map[string]int) string {
	if len(counts) == 0 {
		return "no errors recorded"
	}
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if counts[names[i]] != counts[names[j]] {
			return counts[names[i]] > counts[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s×%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}
