package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"echobench/report"
)

func TestJudgeProbe(t *testing.T) {
	const bound = 10 * time.Millisecond
	good := report.Run{MsgsPerSec: 1000, ElapsedS: 2, Latency: report.Latency{Count: 2000, P99us: 9000}}
	for _, tc := range []struct {
		name string
		edit func(*report.Run)
		held bool
		why  string
	}{
		{"within everything", func(*report.Run) {}, true, ""},
		{"p99 over the bound", func(r *report.Run) { r.Latency.P99us = 10_001 }, false, "p99"},
		{"rate not achieved", func(r *report.Run) { r.MsgsPerSec = 960 }, false, "achieved"},
		{"rate just achieved", func(r *report.Run) { r.MsgsPerSec = 970 }, true, ""},
		// 1000/s × 10 ms in flight + 1 % of 2,000 offered = 30 allowed.
		{"incomplete within the allowance", func(r *report.Run) { r.Incomplete = 30 }, true, ""},
		{"incomplete beyond the allowance", func(r *report.Run) { r.Incomplete = 31 }, false, "incomplete"},
		{"nothing measured", func(r *report.Run) { r.Latency = report.Latency{} }, false, "no latency"},
	} {
		run := good
		tc.edit(&run)
		held, why := judgeProbe(run, 1000, bound)
		if held != tc.held || !strings.Contains(why, tc.why) {
			t.Errorf("%s: held %v (%q), want %v (%q)", tc.name, held, why, tc.held, tc.why)
		}
	}
}

// fakeServer answers probes as a server whose corrected p99 stays within any bound up to
// threshold msgs/s and explodes above it, with a closed-loop throughput of saturation.
type fakeServer struct {
	threshold, saturation int
	rates                 []int // probed, in order; 0 = closed loop
}

func (f *fakeServer) probe(rate int) (report.Run, error) {
	f.rates = append(f.rates, rate)
	if rate == 0 {
		return report.Run{MsgsPerSec: float64(f.saturation)}, nil
	}
	run := report.Run{MsgsPerSec: float64(rate), ElapsedS: 1, Latency: report.Latency{Count: int64(rate), P99us: 100}}
	if rate > f.threshold {
		run.Latency.P99us = 1e6
	}
	return run, nil
}

func TestKneeSearch(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		opts                  kneeOptions
		threshold, saturation int
		wantClosedLoop        bool
		knee                  func(k float64) bool
		note                  string
	}{
		{"closed-loop top, bisection to 5%", kneeOptions{tolerance: 0.05, probes: 10}, 37_000, 100_000, true,
			func(k float64) bool { return k <= 37_000 && k >= 37_000/1.05 }, ""},
		{"bracket from the flags", kneeOptions{tolerance: 0.05, probes: 10, min: 20_000, max: 50_000}, 37_000, 100_000, false,
			func(k float64) bool { return k <= 37_000 && k >= 37_000/1.05 }, ""},
		{"-knee-min above the knee halves on", kneeOptions{tolerance: 0.05, probes: 10, min: 40_000, max: 50_000}, 15_000, 100_000, false,
			func(k float64) bool { return k <= 15_000 && k >= 15_000/1.05 }, ""},
		{"held at the top", kneeOptions{tolerance: 0.05, probes: 10}, 200_000, 100_000, true,
			func(k float64) bool { return k == 100_000 }, "closed-loop throughput"},
		{"held at -knee-max", kneeOptions{tolerance: 0.05, probes: 10, max: 50_000}, 200_000, 100_000, false,
			func(k float64) bool { return k == 50_000 }, "raise -knee-max"},
		{"budget spent bisecting", kneeOptions{tolerance: 0.001, probes: 4}, 37_000, 100_000, true,
			func(k float64) bool { return k > 0 && k <= 37_000 }, "budget of 4 spent"},
		{"budget spent halving", kneeOptions{tolerance: 0.05, probes: 3}, 3_000, 100_000, true,
			func(k float64) bool { return k == 0 }, "no probe held within the budget"},
		{"nothing holds down to the floor", kneeOptions{tolerance: 0.05, probes: 50}, 0, 100_000, true,
			func(k float64) bool { return k == 0 }, "fewer than 1000 messages"},
	} {
		f := &fakeServer{threshold: tc.threshold, saturation: tc.saturation}
		tc.opts.bound = time.Millisecond
		s := &kneeSearch{kneeOptions: tc.opts, window: time.Second, probe: f.probe, log: func(string, ...any) {}}
		k, pick, err := s.run()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !tc.knee(k.RateMsgsPerS) || !strings.Contains(k.Note, tc.note) || (tc.note == "") != (k.Note == "") {
			t.Errorf("%s: knee %.0f, note %q; want it to say %q", tc.name, k.RateMsgsPerS, k.Note, tc.note)
		}
		if closed := len(f.rates) > 0 && f.rates[0] == 0; closed != tc.wantClosedLoop {
			t.Errorf("%s: probed %v; closed-loop probe first %v, want %v", tc.name, f.rates, closed, tc.wantClosedLoop)
		}
		if len(k.Probes) > tc.opts.probes {
			t.Errorf("%s: %d probes, over the budget of %d", tc.name, len(k.Probes), tc.opts.probes)
		}
		if (pick >= 0) != (k.RateMsgsPerS > 0) || (pick >= 0 && (!k.Probes[pick].Held || k.Probes[pick].Rate != k.RateMsgsPerS)) {
			t.Errorf("%s: pick %d does not name the knee's own probe among %+v", tc.name, pick, k.Probes)
		}
		for _, p := range k.Probes {
			if p.Held && p.Rate > k.RateMsgsPerS {
				t.Errorf("%s: probe at %.0f held, above the knee %.0f", tc.name, p.Rate, k.RateMsgsPerS)
			}
		}
	}
}

// startPacedServer is an echo server whose capacity is fixed by pacing: it releases at most
// perSecond echoes a second over all its connections together, a token bucket (the generic cell
// rate algorithm) with a burst of 20 ms worth. Release times are computed, not measured, so a
// sleep that oversleeps delays one echo without lowering the capacity. Each read is taken as one
// message, which it is at the one-in-flight ping-pong the tests load it with.
func startPacedServer(t *testing.T, perSecond int) string {
	interval := time.Second / time.Duration(perSecond)
	burst := 20 * time.Millisecond
	var mu sync.Mutex
	var due time.Time // the bucket's theoretical arrival time: one interval per echo released
	return startTestServer(t, func(buf []byte, _ int) []byte {
		mu.Lock()
		now := time.Now()
		release := now
		if early := due.Add(-burst); early.After(now) {
			release = early // the bucket is empty: wait for the next token
		}
		if due.Before(now) {
			due = now
		}
		due = due.Add(interval)
		mu.Unlock()
		time.Sleep(time.Until(release))
		return buf
	})
}

// TestKneeHoldsBelowAndFailsAbove is issue #16's test of the knee: at 0.8× the reported knee a
// fresh run must hold the bound, at 1.25× it must not. The server's capacity is fixed by pacing
// at a rate any machine keeps up with under -race, and the bound is long against the stalls of
// a loaded machine (30-70 ms of p99 were seen at 0.5-0.8× the capacity with a 20 ms bound, on
// the two shared cores, under -race, beside other loads): above the capacity the backlog fails
// the achieved-rate rule within a second whatever the bound, so a long bound costs the test
// nothing and keeps the outcome on the search, not on the machine's speed. It runs
// both ways of finding the top of the bracket: a closed-loop probe, which against this server
// finds its capacity and holds there, and -knee-max above the capacity, which the search must
// bisect down from.
func TestKneeHoldsBelowAndFailsAbove(t *testing.T) {
	const capacity = 3000
	const bound = 100 * time.Millisecond
	addr := startPacedServer(t, capacity)
	load := []string{"-addr", addr, "-pin=false", "-c", "10", "-warmup", "300ms", "-d", "1s"}
	for _, search := range [][]string{
		{"-knee", bound.String()},
		{"-knee", bound.String(), "-knee-max", strconv.Itoa(2 * capacity)},
	} {
		out := filepath.Join(t.TempDir(), "knee.json")
		var stdout, stderr bytes.Buffer
		status := run(append(append([]string{}, load...), append(search, "-o", out)...), &stdout, &stderr)
		t.Logf("%q: stdout:\n%s\nstderr:\n%s", search, stdout.String(), stderr.String())
		if status != exitOK {
			t.Fatalf("%q: exit status %d", search, status)
		}
		rep := readReport(t, out)
		k := rep.Knee
		if k == nil || k.RateMsgsPerS <= 0 {
			t.Fatalf("%q: no knee found: %+v", search, k)
		}
		if k.RateMsgsPerS > 1.1*capacity || k.RateMsgsPerS < 0.5*capacity {
			t.Errorf("%q: knee %.0f msgs/s against a server paced at %d msgs/s", search, k.RateMsgsPerS, capacity)
		}
		if len(rep.Runs) != 1 || rep.Settings.Rate != int(k.RateMsgsPerS) {
			t.Errorf("%q: report has %d runs at rate %d; want the knee's own probe at %.0f", search, len(rep.Runs), rep.Settings.Rate, k.RateMsgsPerS)
		}
		if !strings.Contains(stdout.String(), "knee: ") {
			t.Errorf("%q: the knee is not printed", search)
		}
		for _, tc := range []struct {
			factor float64
			hold   bool
		}{{0.8, true}, {1.25, false}} {
			rate := int(tc.factor * k.RateMsgsPerS)
			out := filepath.Join(t.TempDir(), fmt.Sprintf("rate%d.json", rate))
			var stdout, stderr bytes.Buffer
			if status := run(append(append([]string{}, load...), "-rate", strconv.Itoa(rate), "-o", out), &stdout, &stderr); status != exitOK {
				t.Fatalf("run at %d msgs/s: exit status %d\n%s", rate, status, stderr.String())
			}
			fresh := readReport(t, out).Runs[0]
			if held, why := judgeProbe(fresh, rate, bound); held != tc.hold {
				t.Errorf("%q: %g× the knee (%d msgs/s): held %v (%s), want %v; run: %.0f msgs/s, p99 %.0f µs, %d incomplete",
					search, tc.factor, rate, held, why, tc.hold, fresh.MsgsPerSec, fresh.Latency.P99us, fresh.Incomplete)
			}
		}
	}
}

// TestKneeSaysWhenTheHostFailedAProbe: probes above the knee that were also host-limited may have
// failed for the host, so the search says the knee is a floor; a search whose stolen probes all
// held has nothing to say.
func TestKneeSaysWhenTheHostFailedAProbe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stolen func(rate int) bool
		want   bool
	}{
		{"failed probes stolen", func(rate int) bool { return rate > 37_000 }, true},
		{"held probes stolen", func(rate int) bool { return rate <= 37_000 }, false},
		{"none stolen", func(int) bool { return false }, false},
	} {
		f := &fakeServer{threshold: 37_000, saturation: 100_000}
		probe := func(rate int) (report.Run, error) {
			run, err := f.probe(rate)
			if rate > 0 && tc.stolen(rate) {
				run.HostLimited = &report.HostLimited{ClientPct: 5}
			}
			return run, err
		}
		s := &kneeSearch{kneeOptions: kneeOptions{tolerance: 0.05, probes: 10, bound: time.Millisecond}, window: time.Second, probe: probe, log: func(string, ...any) {}}
		k, _, err := s.run()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := strings.Contains(k.Note, "HOST-LIMITED"); got != tc.want {
			t.Errorf("%s: note %q; want HOST-LIMITED in it: %v", tc.name, k.Note, tc.want)
		}
		for _, p := range k.Probes {
			if p.HostLimited != tc.stolen(int(p.Rate)) {
				t.Errorf("%s: probe at %.0f host-limited %v", tc.name, p.Rate, p.HostLimited)
			}
		}
	}
}

func TestKneeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-knee", "1ms", "-rate", "1000"},
		{"-knee", "1ms", "-repeat", "2"},
		{"-knee", "1ms", "-messages", "1000"},
		{"-knee", "1ms", "-knee-tolerance", "0"},
		{"-knee", "1ms", "-knee-probes", "0"},
		{"-knee", "1ms", "-knee-min", "500", "-knee-max", "500"},
		{"-knee", "-1ms"},
		{"-knee-max", "5000"}, // without -knee
	} {
		if _, err := parseFlags(append([]string{"-model", "epoll"}, args...), &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	if _, err := parseFlags([]string{"-model", "epoll", "-knee", "1ms", "-knee-min", "1000", "-knee-max", "50000"}, &bytes.Buffer{}); err != nil {
		t.Errorf("a valid -knee bracket refused: %v", err)
	}
}
