package measure

import (
	"time"

	"echobench/internal/procstat"
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
}

// accountant samples both sides' CPU through the run (and, through the sampler, the server's
// peaks), so that CPU over the measured window can be read off the series afterwards.
type accountant struct {
	sampler *procstat.Sampler
	stop    chan struct{}
	done    chan struct{}
	points  []point
	// lastCost is how long the last point took to take; procstat.Pace spaces points by it.
	lastCost time.Duration
}

func startAccounting(s *procstat.Sampler) *accountant {
	a := &accountant{sampler: s, stop: make(chan struct{}), done: make(chan struct{})}
	a.take()
	go func() {
		defer close(a.done)
		for {
			select {
			case <-a.stop:
				return
			case <-time.After(procstat.Pace(a.lastCost)):
			}
			a.take()
		}
	}()
	return a
}

func (a *accountant) take() {
	began := time.Now()
	p := point{t: began}
	p.client, _ = procstat.Self()
	if a.sampler != nil {
		if t, err := a.sampler.Sample(false); err == nil {
			p.server, p.serverOK = t, true
		}
	}
	a.lastCost = time.Since(began)
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

// finish stops sampling, takes a last point and returns the series.
func (a *accountant) finish() []point {
	close(a.stop)
	<-a.done
	a.take()
	return a.points
}

// side reads one side's CPU from a point; ok is false where that side was not readable.
type side func(point) (cpu time.Duration, ok bool)

func clientSide(p point) (time.Duration, bool) { return p.client.CPU(), true }
func serverSide(p point) (time.Duration, bool) { return p.server.CPU(), p.serverOK }

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
	cpu := func(p point) time.Duration { c, _ := s(p); return c }
	var before, after *point
	for i := range points {
		p := &points[i]
		if _, ok := s(*p); !ok {
			continue // the side was unreadable at this point: it says nothing
		}
		if !p.t.After(t) {
			before = p
		} else if after == nil {
			after = p
		}
	}
	switch {
	case before == nil && after == nil:
		return 0
	case before == nil:
		return cpu(*after)
	case after == nil:
		return cpu(*before)
	}
	span := after.t.Sub(before.t)
	if span <= 0 {
		return cpu(*before)
	}
	frac := float64(t.Sub(before.t)) / float64(span)
	return cpu(*before) + time.Duration(frac*float64(cpu(*after)-cpu(*before)))
}
