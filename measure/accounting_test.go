package measure

import (
	"testing"
	"time"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/server"
)

// TestWindowFromSnapshots builds a series the way a stats-port run does, one unreadable point
// among them, and checks the window's CPU and the snapshots at its ends, both interpolated
// between the readable points around each end.
func TestWindowFromSnapshots(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	started := t0.Add(-time.Hour)
	// The server's clock runs 5 s ahead of echobench's; it uses 0.5 s of CPU (0.4 user) and
	// reads 1,000 bytes per second of echobench's clock.
	at := func(s float64, readable bool) point {
		p := point{t: t0.Add(time.Duration(s * float64(time.Second)))}
		if !readable {
			return p
		}
		user, sys := 0.4*s, 0.1*s
		snap := &child.Snapshot{Stats: server.Stats{BytesIn: uint64(1000 * s), BytesOut: uint64(1000 * s)},
			Process: &child.Usage{PID: 7, Started: started, Time: p.t.Add(5 * time.Second), UserS: user, SysS: sys}}
		p.server = procstat.Tree{User: time.Duration(user * float64(time.Second)), Sys: time.Duration(sys * float64(time.Second))}
		p.serverOK, p.snap = true, snap
		return p
	}
	points := []point{at(0, true), at(1, true), at(2, false), at(3, true), at(4, true)}
	from, to := t0.Add(500*time.Millisecond), t0.Add(2500*time.Millisecond)

	cpu, pct := windowCPU(points, from, to, serverSide)
	if d := cpu - 1.0; d > 1e-6 || d < -1e-6 || pct < 49.99 || pct > 50.01 {
		t.Errorf("window CPU %v s, %v%% of a core: want 1 s, 50%%", cpu, pct)
	}
	user, _ := windowCPU(points, from, to, serverUser)
	if d := user - 0.8; d > 1e-6 || d < -1e-6 {
		t.Errorf("window user CPU %v s, want 0.8", user)
	}
	open, closed := snapshotAt(points, from), snapshotAt(points, to)
	if open == nil || closed == nil {
		t.Fatal("no snapshots at the window's ends")
	}
	if !open.Time.Equal(from.Add(5*time.Second)) || !closed.Time.Equal(to.Add(5*time.Second)) {
		t.Errorf("snapshots at %v and %v: want the window's ends on the server's clock, 5 s ahead", open.Time, closed.Time)
	}
	if open.BytesIn != 500 || closed.BytesIn != 2500 || open.PID != 7 || !open.Started.Equal(started) {
		t.Errorf("snapshots %+v .. %+v: want 500 and 2500 bytes in, pid 7", open, closed)
	}
	if snapshotAt(points[2:3], from) != nil {
		t.Error("a snapshot from a series with no readable point")
	}
}

// TestWindowSteal checks the steal share over a window on a series whose CPU 1 is stolen 2% of
// the time and CPU 0 not at all, one point unreadable: per CPU, over both, and unread.
func TestWindowSteal(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(s float64, readable bool) point {
		p := point{t: t0.Add(time.Duration(s * float64(time.Second)))}
		if readable {
			p.steal = procstat.Steal{0, time.Duration(0.02 * s * float64(time.Second))}
		}
		return p
	}
	points := []point{at(0, true), at(1, true), at(2, false), at(4, true)}
	from, to := t0.Add(500*time.Millisecond), t0.Add(3500*time.Millisecond)
	for _, tc := range []struct {
		cpus []int
		want float64
	}{
		{[]int{1}, 2},
		{[]int{0}, 0},
		{[]int{0, 1}, 1},
		{nil, 1}, // every CPU the series knows
	} {
		got := windowSteal(points, from, to, tc.cpus)
		if got == nil || *got < tc.want-1e-6 || *got > tc.want+1e-6 {
			t.Errorf("steal on %v: got %v, want %v%%", tc.cpus, got, tc.want)
		}
	}
	if got := windowSteal(points[2:3], from, to, []int{1}); got != nil {
		t.Errorf("a series with no readable /proc/stat: got %v%%, want nil (not measured)", *got)
	}
}

// slowSource is a server source whose every sample takes delay, as one taken by a starved thread.
type slowSource struct{ delay time.Duration }

func (s slowSource) sample() (procstat.Tree, *child.Snapshot, error) {
	time.Sleep(s.delay)
	return procstat.Tree{User: time.Second}, nil, nil
}
func (slowSource) peaks() procstat.Peaks { return procstat.Peaks{} }
func (slowSource) via() string           { return "test" }

// TestSpreadPointsDropped: a point whose reads spread over more than maxPointSpread cannot be
// placed in time and is left out, unless it is one of the series' ends; a quick one is kept.
func TestSpreadPointsDropped(t *testing.T) {
	slow := &accountant{server: slowSource{delay: maxPointSpread + 10*time.Millisecond}}
	slow.take(false)
	if len(slow.points) != 0 {
		t.Errorf("a point that took longer than %v was kept", maxPointSpread)
	}
	slow.take(true)
	if len(slow.points) != 1 {
		t.Errorf("an end point was dropped")
	}
	quick := &accountant{server: slowSource{}}
	quick.take(false)
	if len(quick.points) != 1 || !quick.points[0].serverOK {
		t.Errorf("a quick point was not kept: %+v", quick.points)
	}
}

// TestLongestGap: the longest span between points that overlaps the window, not one outside it.
func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	at := func(s float64) point { return point{t: t0.Add(time.Duration(s * float64(time.Second)))} }
	points := []point{at(0), at(5), at(5.2), at(6.5), at(6.6), at(9)}
	if got := longestGap(points, t0.Add(5100*time.Millisecond), t0.Add(6600*time.Millisecond)); got != 1300*time.Millisecond {
		t.Errorf("gap in the window %v, want 1.3s (the 5 s before it and the 2.4 s after do not count)", got)
	}
}
