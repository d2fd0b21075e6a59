package bench

import (
	"math"
	"testing"

	"echobench/report"
)

// runs builds a result of one row in one cell from its msgs/s per round (round i is rounds[i];
// nil rounds means 0, 1, 2, ...).
func runs(row, cell string, msgs []float64, rounds []int) *Result {
	r := &Result{Row: Row{Name: row}, Cell: cell}
	for i, m := range msgs {
		r.Runs = append(r.Runs, report.Summary{MsgsPerSec: m, NewConnsPerSec: m / 10, ServerPeakRSSBytes: uint64(m) * 1000, ConnsEstablished: 1000})
		if rounds == nil {
			r.Rounds = append(r.Rounds, i)
		} else {
			r.Rounds = append(r.Rounds, rounds[i])
		}
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestEstimatedMeanInterval checks the t interval against a hand computation: for 1, 2, 3 the
// mean is 2, the sample deviation 1, and t(0.975, 2) = 4.302653 gives ±4.302653/√3.
func TestEstimatedMeanInterval(t *testing.T) {
	e := Estimated(runs("a", "c", []float64{1, 2, 3}, nil), StatMsgsPerSec.Of)
	half := 4.302652729749464 / math.Sqrt(3)
	if e.N != 3 || !near(e.Mid, 2) || math.Abs(e.Lo-(2-half)) > 1e-6 || math.Abs(e.Hi-(2+half)) > 1e-6 {
		t.Errorf("Estimated(1, 2, 3) = %+v, want 2 ± %.6f over 3 runs", e, half)
	}
	one := Estimated(runs("a", "c", []float64{7}, nil), StatMsgsPerSec.Of)
	if one != (Estimate{Mid: 7, Lo: 7, Hi: 7, N: 1}) || one.Interval() {
		t.Errorf("one run: %+v, want a point with N = 1 and no interval", one)
	}
	if e := Estimated(&Result{NA: "no"}, StatMsgsPerSec.Of); e.N != 0 {
		t.Errorf("no runs: %+v, want N = 0", e)
	}
	// A per-message cost of a run that echoed nothing is not a number and is left out.
	r := runs("a", "c", []float64{100, 0}, nil)
	r.Runs[0].ServerCPUPct, r.Runs[1].ServerCPUPct = 50, 50
	if e := Estimated(r, StatServerUsMsg.Of); e.N != 1 || !near(e.Mid, 5000) {
		t.Errorf("µs/msg with one idle run: %+v, want 5000 from 1 run", e)
	}
}

// TestRatioPairsRounds checks that pairing by round removes drift between rounds: a row exactly
// 1.2× the baseline in every round has a zero-width interval, however much the rounds differ,
// while the unpaired comparison of the same numbers carries the drift and is wide.
func TestRatioPairsRounds(t *testing.T) {
	base := runs(Baseline, "c", []float64{100, 200, 150, 120}, nil)
	row := runs("epoll", "c", []float64{120, 240, 180, 144}, nil)
	e, ok := Ratio(row, base, StatMsgsPerSec.Of)
	if !ok || e.N != 4 || !near(e.Mid, 1.2) || !near(e.Lo, 1.2) || !near(e.Hi, 1.2) {
		t.Errorf("paired ratio = %+v, %v; want exactly 1.2 over 4 pairs", e, ok)
	}
	// The same runs in rounds that do not match: the Welch fallback.
	shifted := runs("epoll", "c", []float64{120, 240, 180, 144}, []int{10, 11, 12, 13})
	u, ok := Ratio(shifted, base, StatMsgsPerSec.Of)
	if !ok || u.N != 4 || !near(u.Mid, 1.2) || u.Lo > 1 || u.Hi < 1.4 {
		t.Errorf("unpaired ratio = %+v, %v; want 1.2 with an interval wide enough to hold 1 and 1.4", u, ok)
	}
	if u.Lo <= 0 || u.Hi/u.Mid-1 <= 1-u.Lo/u.Mid-1e-12 {
		t.Errorf("unpaired ratio %+v is not symmetric in the logarithm", u)
	}
	// A noisy paired ratio covers its true value and is not symmetric around its middle.
	noisy := runs("epoll", "c", []float64{110, 250, 170, 140}, nil)
	n, _ := Ratio(noisy, base, StatMsgsPerSec.Of)
	if !(n.Lo < n.Mid && n.Mid < n.Hi) || !near(math.Log(n.Hi/n.Mid), math.Log(n.Mid/n.Lo)) {
		t.Errorf("noisy ratio %+v: want Lo < Mid < Hi, symmetric in the logarithm", n)
	}
	// One run each: a point, N = 1.
	p, ok := Ratio(runs("epoll", "c", []float64{250}, nil), runs(Baseline, "c", []float64{100}, nil), StatMsgsPerSec.Of)
	if !ok || p.N != 1 || !near(p.Mid, 2.5) || p.Lo != p.Mid || p.Hi != p.Mid {
		t.Errorf("one run each: %+v, %v; want the point 2.5", p, ok)
	}
	for name, b := range map[string]*Result{
		"nil baseline":   nil,
		"n/a baseline":   {NA: "could not start"},
		"zero baseline":  runs(Baseline, "c", []float64{0, 0}, nil),
		"empty baseline": {},
	} {
		if e, ok := Ratio(row, b, StatMsgsPerSec.Of); ok {
			t.Errorf("%s: ratio %+v, want none", name, e)
		}
	}
}

// TestRatioKnee checks that knee rates pair by round like the summaries do.
func TestRatioKnee(t *testing.T) {
	knees := func(name string, rates ...float64) *Result {
		r := &Result{Row: Row{Name: name}, Cell: "knee=1ms"}
		for i, k := range rates {
			r.Knees = append(r.Knees, report.Knee{BoundUs: 1000, RateMsgsPerS: k})
			r.Rounds = append(r.Rounds, i)
		}
		return r
	}
	base, row := knees(Baseline, 10000, 20000, 15000), knees("epoll", 15000, 30000, 22500)
	if e, ok := RatioKnee(row, base); !ok || !near(e.Mid, 1.5) || !near(e.Lo, 1.5) || !near(e.Hi, 1.5) {
		t.Errorf("knee ratio %+v, %v; want exactly 1.5", e, ok)
	}
	if e := EstimatedKnee(row); e.N != 3 || !near(e.Mid, 22500) {
		t.Errorf("EstimatedKnee = %+v, want 22500 over 3 searches", e)
	}
}

// TestConvergedRule checks the adaptive-repeat rule case by case.
func TestConvergedRule(t *testing.T) {
	cell := Cell{Name: "conns=1000", Sweep: SweepConns, X: 1000}
	tight := func(name string, f float64) *Result {
		return runs(name, cell.Name, []float64{100 * f, 200 * f, 150 * f}, nil)
	}
	base := tight(Baseline, 1)
	for _, tc := range []struct {
		name    string
		results []*Result
		want    bool
	}{
		{"tight paired ratios", []*Result{base, tight("epoll", 1.3), tight("uring", 0.9)}, true},
		{"one run has no interval", []*Result{runs(Baseline, cell.Name, []float64{100}, nil), runs("epoll", cell.Name, []float64{120}, nil)}, false},
		{"a row with one run", []*Result{base, tight("epoll", 1.3), runs("uring", cell.Name, []float64{90}, nil)}, false},
		{"a noisy ratio", []*Result{base, tight("epoll", 1.3), runs("uring", cell.Name, []float64{90, 250, 120}, nil)}, false},
		{"an n/a row is set aside", []*Result{base, tight("epoll", 1.3), {Row: Row{Name: "select"}, Cell: cell.Name, NA: "fd 1024"}}, true},
		{"another cell is not looked at", []*Result{base, tight("epoll", 1.3), runs("uring", "reconnect", []float64{90}, nil)}, true},
		{"no baseline: own intervals, tight", []*Result{runs("epoll", cell.Name, []float64{100, 101, 100.5}, nil)}, true},
		{"no baseline: own intervals, drifting", []*Result{tight("epoll", 1)}, false},
		{"every row n/a", []*Result{{Row: Row{Name: Baseline}, Cell: cell.Name, NA: "x"}}, true},
	} {
		if got := Converged(tc.results, cell, Baseline, 0.05); got != tc.want {
			t.Errorf("%s: Converged = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Reconnect cells are judged by new connections/s: runs whose msgs/s are all over the place
	// but whose connection rate is paired-tight have converged.
	rc := Cell{Name: "reconnect", Sweep: SweepReconnect, X: 100}
	b, r := tight(Baseline, 1), tight("epoll", 2)
	b.Cell, r.Cell = rc.Name, rc.Name
	for i := range r.Runs {
		r.Runs[i].MsgsPerSec = []float64{1, 500, 90}[i]
	}
	if !Converged([]*Result{b, r}, rc, Baseline, 0.05) {
		t.Errorf("reconnect cell with tight new conns/s ratios did not converge")
	}
}

// TestOverlaps checks the tie rule: intervals that share a point are ≈, points only if equal.
func TestOverlaps(t *testing.T) {
	a := Estimate{Mid: 1, Lo: 0.9, Hi: 1.1, N: 3}
	for _, tc := range []struct {
		b    Estimate
		want bool
	}{
		{Estimate{Mid: 1.2, Lo: 1.05, Hi: 1.3, N: 3}, true},
		{Estimate{Mid: 1.2, Lo: 1.1, Hi: 1.3, N: 3}, true}, // touching ends share a point
		{Estimate{Mid: 1.2, Lo: 1.11, Hi: 1.3, N: 3}, false},
		{Estimate{Mid: 1.0, Lo: 1.0, Hi: 1.0, N: 1}, true},
		{Estimate{}, false},
	} {
		if got := a.Overlaps(tc.b); got != tc.want || tc.b.Overlaps(a) != got {
			t.Errorf("%+v overlaps %+v = %v, want %v both ways", a, tc.b, got, tc.want)
		}
	}
}
