package measure

import (
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/report"
)

// maxPoints bounds the CPU time series of one run. At one point per procstat.SampleInterval that
// is over two hours; a longer run halves the series' resolution instead of growing it.
const maxPoints = 1 << 16

// point is the CPU used so far by each side at one instant.
type point struct {
	t        time.Time
	client   procstat.Usage
	server   procstat.Tree
	serverOK bool // the server tree was readable at t
	// steal is every CPU's steal time so far (procstat.Steal), nil where /proc/stat was unreadable.
	steal procstat.Steal
	// snap is the server's own snapshot the server figures came from (a statsSource), for its
	// counters and its clock.
	snap *child.Snapshot
}

// accountant samples both sides' CPU through the run (and, through the server source, the
// server's peaks), so that CPU over the measured window can be read off the series afterwards.
type accountant struct {
	server serverSource // nil: the server is not ours to watch
	stop   chan struct{}
	done   chan struct{}
	points []point
	// lastCost is the CPU the last point took to take; procstat.Pace spaces points by it. CPU,
	// not wall time: at the idle policy a point can wait long for its CPU at no cost to anyone.
	lastCost time.Duration
}

func startAccounting(server serverSource) *accountant {
	a := &accountant{server: server, stop: make(chan struct{}), done: make(chan struct{})}
	a.take(true)
	go func() {
		defer close(a.done)
		// A sample reads a file or two per thread of the server tree, on echobench's own CPUs.
		// At the normal policy a send that fell due meanwhile waited for it (the scheduler lets
		// a running thread finish its slice); SCHED_IDLE makes every wake of the engine preempt
		// it. If the policy cannot be set, sampling only disturbs more.
		affinity.IdleThread()
		for {
			select {
			case <-a.stop:
				return
			case <-time.After(procstat.Pace(a.lastCost)):
			}
			a.take(false)
		}
	}()
	return a
}

// maxPointSpread is how long the reads of one point may take before it is left out of the
// series. At SCHED_IDLE the sampler's thread can starve while busier threads fill its CPUs, and a
// point begun before the window and finished after it would carry its start time and its end's
// server figures: the window would seem to cost nothing. The points around a dropped one
// interpolate across it instead.
const maxPointSpread = 50 * time.Millisecond

// take adds a point to the series; one taken at the sampler's idle policy (must false) is dropped
// if its reads spread over more than maxPointSpread. A stats port's answer is not held to that:
// it can take a network round trip, and it carries the server's own clock.
func (a *accountant) take(must bool) {
	began, cpu := time.Now(), procstat.ThreadCPU()
	p := point{t: began}
	p.client, _ = procstat.Self()
	p.steal, _ = procstat.ReadSteal()
	if a.server != nil {
		if t, snap, err := a.server.sample(); err == nil {
			p.server, p.serverOK, p.snap = t, true, snap
		}
	}
	a.lastCost = procstat.ThreadCPU() - cpu
	if _, remote := a.server.(*statsSource); !must && !remote && time.Since(began) > maxPointSpread {
		return
	}
	if len(a.points) == maxPoints {
		// Keep every other point: the ends stay, the resolution halves.
		kept := a.points[:0]
		for i := 0; i < len(a.points); i += 2 {
			kept = append(kept, a.points[i])
		}
		a.points = kept
	}
	a.points = append(a.points, p)
}

// starvedGap is the longest the series may go without a point inside a window before the run
// says its CPU figures there are interpolated: about seven sampling intervals.
const starvedGap = time.Second

// longestGap is the longest span between consecutive points that overlaps [from, to].
func longestGap(points []point, from, to time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(points); i++ {
		a, b := points[i-1].t, points[i].t
		if b.After(from) && a.Before(to) {
			gap = max(gap, b.Sub(a))
		}
	}
	return gap
}

// finish stops sampling, takes a last point and returns the series.
func (a *accountant) finish() []point {
	close(a.stop)
	<-a.done
	a.take(true)
	return a.points
}

// side reads one side's CPU from a point; ok is false where that side was not readable.
type side func(point) (cpu time.Duration, ok bool)

func clientSide(p point) (time.Duration, bool) { return p.client.CPU(), true }
func serverSide(p point) (time.Duration, bool) { return p.server.CPU(), p.serverOK }
func serverUser(p point) (time.Duration, bool) { return p.server.User, p.serverOK }
func serverSys(p point) (time.Duration, bool)  { return p.server.Sys, p.serverOK }

// stealOn reads the steal of cpus (nil: every CPU) from a point.
func stealOn(cpus []int) side {
	return func(p point) (time.Duration, bool) { return p.steal.On(cpus), p.steal != nil }
}

// windowSteal is the share of the wall time of cpus (nil: every CPU) over [from, to] that the
// hypervisor ran something else, in percent; nil when /proc/stat was not readable.
func windowSteal(points []point, from, to time.Time, cpus []int) *float64 {
	n := len(cpus)
	readable := false
	for _, p := range points {
		if p.steal != nil {
			readable = true
			if cpus == nil {
				n = max(n, len(p.steal))
			}
		}
	}
	if !readable || n == 0 {
		return nil
	}
	_, pct := windowCPU(points, from, to, stealOn(cpus))
	pct /= float64(n)
	return &pct
}

// windowCPU is the CPU one side used between from and to, interpolating linearly between the
// samples around each instant, in seconds and as a percentage of one core over that wall time.
func windowCPU(points []point, from, to time.Time, s side) (seconds, pct float64) {
	seconds = (cpuAt(points, to, s) - cpuAt(points, from, s)).Seconds()
	if wall := to.Sub(from); wall > 0 {
		pct = seconds / wall.Seconds() * 100
	}
	return seconds, pct
}

func cpuAt(points []point, t time.Time, s side) time.Duration {
	before, after, frac := bracket(points, t, func(p point) bool { _, ok := s(p); return ok })
	if before == nil {
		return 0
	}
	b, _ := s(*before)
	a, _ := s(*after)
	return b + time.Duration(frac*float64(a-b))
}

// bracket finds the last point at or before t and the first after it among those where readable
// holds (a point where a side was unreadable says nothing), and how far t lies between them.
// Before the first such point or after the last, both are that point and frac is 0; with no
// readable point both are nil.
func bracket(points []point, t time.Time, readable func(point) bool) (before, after *point, frac float64) {
	for i := range points {
		p := &points[i]
		if !readable(*p) {
			continue
		}
		if !p.t.After(t) {
			before = p
		} else if after == nil {
			after = p
		}
	}
	switch {
	case before == nil:
		return after, after, 0
	case after == nil:
		return before, before, 0
	}
	if span := after.t.Sub(before.t); span > 0 {
		frac = float64(t.Sub(before.t)) / float64(span)
	}
	return before, after, frac
}

// snapshotAt is the server's snapshot at t, interpolated between the ones around it as windowCPU
// interpolates CPU (the server's clock included), or nil when the series holds none.
func snapshotAt(points []point, t time.Time) *report.ServerSnapshot {
	before, after, frac := bracket(points, t, func(p point) bool { return p.snap != nil })
	if before == nil {
		return nil
	}
	b, a := before.snap, after.snap
	between := func(x, y float64) float64 { return x + frac*(y-x) }
	count := func(x, y uint64) uint64 { return uint64(between(float64(x), float64(y))) }
	return &report.ServerSnapshot{
		PID: b.Process.PID, Started: b.Process.Started,
		Time:    b.Process.Time.Add(time.Duration(frac * float64(a.Process.Time.Sub(b.Process.Time)))),
		UserS:   between(b.Process.UserS, a.Process.UserS),
		SysS:    between(b.Process.SysS, a.Process.SysS),
		BytesIn: count(b.BytesIn, a.BytesIn), BytesOut: count(b.BytesOut, a.BytesOut),
	}
}
