package main

// The -knee search: the highest open-loop rate whose coordinated-omission-corrected p99 stays
// within a bound, found by bracketing and then bisection, one measured run per probe.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"echobench/measure"
	"echobench/report"
)

// kneeOptions are the -knee flags.
type kneeOptions struct {
	bound     time.Duration // the corrected-p99 bound; 0 = no search
	tolerance float64       // bisect until the bracket is this narrow, relative to its held end
	probes    int           // at most this many open-loop probes
	min, max  int           // msgs/s: the bracket to start from; 0 = learn it
}

// Defaults of the -knee flags. Ten probes are the top of the bracket, a halving or two and the
// four or five bisections that narrow a factor-of-two bracket to 5 %.
const (
	defaultKneeTolerance = 0.05
	defaultKneeProbes    = 10
)

// achievedShare is the share of its offered rate a probe must achieve to hold. A healthy
// open-loop run completes its rate less only what is in flight at the window's two edges, well
// under 1 % of a window of a second or more; a server that falls behind by 3 % of the offered
// rate builds a backlog that grows by that much every second, which is the overload the knee
// is the edge of, even while the backlog is still too young to have reached the p99.
const achievedShare = 0.97

// incompleteTailShare is the share of a probe's offered messages that may be incomplete at the
// window's end beyond those legitimately in flight: the p99 itself lets 1 % of the messages
// exceed the bound, and an incomplete message is one that has not yet.
const incompleteTailShare = 0.01

// minKneeMessages is the fewest messages a probe's window must be offered: its p99 then rests
// on the ten slowest, so that one outlier cannot decide it alone. The search goes no lower than
// the rate that offers this many in -d.
const minKneeMessages = 1000

// incompleteAllowance is how many messages may be incomplete at the end of a window of elapsed
// seconds offered rate msgs/s that held bound: those in flight when every latency is at the bound
// (Little's law: rate × bound) and the tail that the p99 lets exceed it.
func incompleteAllowance(rate int, bound time.Duration, elapsedS float64) uint64 {
	return uint64(float64(rate)*bound.Seconds() + incompleteTailShare*float64(rate)*elapsedS)
}

// judgeProbe says whether an open-loop run offered rate msgs/s held bound and, if not, why:
// its corrected p99 within the bound, at least achievedShare of the rate achieved, and no more
// incomplete messages than incompleteAllowance.
func judgeProbe(run report.Run, rate int, bound time.Duration) (held bool, why string) {
	var fails []string
	boundUs := float64(bound.Microseconds())
	if run.Latency.Count == 0 {
		fails = append(fails, "no latency measured")
	} else if run.Latency.P99us > boundUs {
		fails = append(fails, fmt.Sprintf("p99 %.0f µs > %.0f µs", run.Latency.P99us, boundUs))
	}
	if share := run.MsgsPerSec / float64(rate); share < achievedShare {
		fails = append(fails, fmt.Sprintf("achieved %.2f%% of the rate (< %.0f%%)", share*100, achievedShare*100))
	}
	if allow := incompleteAllowance(rate, bound, run.ElapsedS); run.Incomplete > allow {
		fails = append(fails, fmt.Sprintf("%d incomplete (> %d allowed)", run.Incomplete, allow))
	}
	return len(fails) == 0, strings.Join(fails, "; ")
}

// kneeSearch is one search. probe measures one run at rate msgs/s (0 = closed loop) and returns
// its report; log gets a line per probe as it completes.
type kneeSearch struct {
	kneeOptions
	window time.Duration // each probe's measured duration (-d)
	probe  func(rate int) (report.Run, error)
	log    func(format string, args ...any)
}

// run searches and returns the knee and the index in its Probes of the knee's own probe (-1 if
// none held). The error is a probe's that failed to measure; the knee holds what was found.
//
// The top of the bracket is -knee-max, or else the throughput S of a closed-loop probe: an open
// loop cannot complete more than S with the same connections and pipeline (each has at most
// -pipeline messages in flight in both), so rates above it only measure a growing queue. The top
// is probed first; if it holds, the knee is the top. Otherwise the bracket's lower end is
// -knee-min, or half the top, halved until a probe holds; then the midpoint of the highest held
// and the lowest failed rate is probed until the two are within the tolerance of each other.
// The search so runs at most one closed-loop probe and -knee-probes open-loop ones, each
// bounded by -warmup and -d, and stops by itself.
func (s *kneeSearch) run() (report.Knee, int, error) {
	k := report.Knee{BoundUs: float64(s.bound.Microseconds()), Tolerance: s.tolerance, ProbeBudget: s.probes, Probes: []report.KneeProbe{}}
	pick := -1
	lowest := int(math.Ceil(minKneeMessages / s.window.Seconds()))
	top := s.max
	if top == 0 {
		run, err := s.probe(0)
		if err != nil {
			return k, pick, fmt.Errorf("closed-loop probe: %w", err)
		}
		k.SaturationMsgsPerS = run.MsgsPerSec
		top = int(run.MsgsPerSec)
		s.log("knee: closed-loop probe: %.0f msgs/s, the top of the bracket", run.MsgsPerSec)
	}
	held, failed := 0, 0 // the highest rate that held and the lowest that failed; 0 = none yet
	try := func(rate int) (bool, error) {
		run, err := s.probe(rate)
		ok, why := judgeProbe(run, rate, s.bound)
		if err != nil {
			ok, why = false, "no result: "+err.Error()
		}
		k.Probes = append(k.Probes, report.KneeProbe{
			Rate: float64(rate), MsgsPerSec: run.MsgsPerSec, P99us: run.Latency.P99us, Held: ok,
			MeterLimited: run.MeterLimited != nil, HostLimited: run.HostLimited != nil, DurationS: run.ElapsedS, Incomplete: run.Incomplete, Why: why,
		})
		if err != nil {
			return false, fmt.Errorf("probe %d at %d msgs/s: %w", len(k.Probes), rate, err)
		}
		verdict := "held"
		if ok {
			held, pick = rate, len(k.Probes)-1
		} else {
			failed, verdict = rate, "failed: "+why
		}
		s.log("knee: probe %d at %d msgs/s: achieved %.0f, p99 %.0f µs: %s", len(k.Probes), rate, run.MsgsPerSec, run.Latency.P99us, verdict)
		return ok, nil
	}
	// finish ends the search with note, empty when it converged, to which a meter-limited probe
	// that decided the outcome adds its warning.
	finish := func(note string, err error) (report.Knee, int, error) {
		k.RateMsgsPerS = float64(held)
		var notes []string
		if note != "" {
			notes = append(notes, note)
		}
		if pick >= 0 && k.Probes[pick].MeterLimited {
			k.MeterLimited = true
			notes = append(notes, "the knee's own probe was METER-LIMITED: its p99 is partly echobench's own schedule lag, so the knee is a floor for the server")
		}
		if n := len(k.Probes); pick < 0 && n > 0 && k.Probes[n-1].MeterLimited {
			notes = append(notes, "the lowest probe was METER-LIMITED: echobench's own schedule lag is a material share of its p99, so the bound may be below what this machine can measure now; give echobench more CPU, or loosen the bound")
		}
		failedStolen := 0
		for _, p := range k.Probes {
			if p.HostLimited && !p.Held {
				failedStolen++
			}
		}
		if failedStolen > 0 {
			notes = append(notes, fmt.Sprintf("%d failed probe(s) were HOST-LIMITED: the hypervisor stole at least %g%% of a side's CPUs, which may be what failed them, so the knee is a floor; rerun when the host is quieter", failedStolen, report.StealSharePct))
		}
		k.Note = strings.Join(notes, "; ")
		return k, pick, err
	}

	if top < lowest {
		return finish(fmt.Sprintf("the top of the bracket, %d msgs/s, offers fewer than %d messages in -d %v: lengthen -d", top, minKneeMessages, s.window), nil)
	}
	if ok, err := try(top); err != nil {
		return finish("stopped by a failed probe", err)
	} else if ok {
		if s.max > 0 {
			return finish(fmt.Sprintf("held at the top of the bracket (-knee-max %d): the knee is at or above it; raise -knee-max", top), nil)
		}
		return finish(fmt.Sprintf("held at the closed-loop throughput %d msgs/s: the bound does not limit this load below the pair's saturation", top), nil)
	}
	next := top / 2
	if s.min > 0 && s.min < top {
		next = s.min
	}
	for held == 0 {
		switch {
		case len(k.Probes) >= s.probes:
			return finish(fmt.Sprintf("no probe held within the budget of %d; the lowest failed at %d msgs/s", s.probes, failed), nil)
		case next < lowest:
			return finish(fmt.Sprintf("no probe held down to %d msgs/s; below %d msgs/s a probe offers fewer than %d messages in -d %v", failed, lowest, minKneeMessages, s.window), nil)
		}
		if _, err := try(next); err != nil {
			return finish("stopped by a failed probe", err)
		}
		next /= 2
	}
	for float64(failed-held) > s.tolerance*float64(held) {
		mid := held + (failed-held)/2
		if mid == held {
			break // one msg/s apart: as narrow as integer rates get
		}
		if len(k.Probes) >= s.probes {
			return finish(fmt.Sprintf("probe budget of %d spent: the knee is between %d (held) and %d msgs/s (failed), %.1f%% apart", s.probes, held, failed, bracketPct(held, failed)), nil)
		}
		if _, err := try(mid); err != nil {
			return finish("stopped by a failed probe", err)
		}
	}
	// Converged: no note, which is how the harness (package bench) tells a search that stopped
	// early from one that did not; the bracket is in the probes.
	return finish("", nil)
}

func bracketPct(held, failed int) float64 {
	return float64(failed-held) / float64(held) * 100
}

// kneeResult is what a search leaves for the report besides the knee.
type kneeResult struct {
	knee report.Knee
	// out is the run that Runs and Summary stand for: the knee's own probe, else the last probe
	// run (the lowest that failed the bound, or one that failed to measure); nil if none ran.
	out      *measure.Outcome
	rate     int      // out's offered rate; 0 = the closed-loop probe
	warnings []string // out's warnings
	err      error    // why the search stopped early: a probe failed to measure
}

// searchKnee runs the -knee search with spec as every probe's run, its Load.Rate set per probe.
// Every probe is a run of its own (measure.Run), with a fresh server child under -model: a probe
// that overloaded the server leaves no backlog, bloated buffers or grown heap to the next one,
// so each probe measures its rate alone, whatever the search's order. Each probe's warnings go to
// stderr as they happen; only the knee probe's go into the report.
func searchKnee(ctx context.Context, o *options, spec measure.Spec, stderr io.Writer) kneeResult {
	type probeRun struct {
		out      measure.Outcome
		rate     int
		warnings []string
	}
	var runs []probeRun // every probe, the closed-loop one included, in order
	var open []int      // indices in runs of the open-loop probes, in Knee.Probes order
	s := &kneeSearch{
		kneeOptions: o.knee,
		window:      o.duration,
		log:         func(format string, args ...any) { fmt.Fprintf(stderr, "echobench: "+format+"\n", args...) },
	}
	s.probe = func(rate int) (report.Run, error) {
		n := len(runs)
		runs = append(runs, probeRun{rate: rate})
		ps := spec
		ps.Load.Rate = rate
		ps.Warn = func(format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			runs[n].warnings = append(runs[n].warnings, msg)
			fmt.Fprintf(stderr, "echobench: WARNING: knee probe at %s: %s\n", rateText(rate), msg)
		}
		out, err := measure.Run(ctx, ps, n)
		runs[n].out = out
		if rate > 0 {
			open = append(open, n)
		}
		if err == nil && out.Run != nil && out.Run.VerifyFailuresTotal > 0 {
			err = fmt.Errorf("the server echoed wrong bytes (%d messages): a broken server has no knee", out.Run.VerifyFailuresTotal)
		}
		if out.Run == nil {
			return report.Run{}, err
		}
		return *out.Run, err
	}
	knee, pick, err := s.run()
	res := kneeResult{knee: knee, err: err}
	chosen := len(runs) - 1
	if pick >= 0 {
		chosen = open[pick]
	}
	if err != nil && res.knee.Note == "" {
		res.knee.Note = err.Error()
	} else if err != nil {
		res.knee.Note += ": " + err.Error()
	}
	if chosen >= 0 {
		r := runs[chosen]
		res.out, res.rate, res.warnings = &r.out, r.rate, r.warnings
	}
	return res
}

// lowestFailedAbove is the lowest probed rate above the knee, all of which failed; 0 if none.
func lowestFailedAbove(k *report.Knee) float64 {
	var failed float64
	for _, p := range k.Probes {
		if p.Rate > k.RateMsgsPerS && (failed == 0 || p.Rate < failed) {
			failed = p.Rate
		}
	}
	return failed
}

func rateText(rate int) string {
	if rate == 0 {
		return "closed loop"
	}
	return fmt.Sprintf("%d msgs/s", rate)
}

// writeKnee prints the search: its bracket, every probe, and the knee.
func writeKnee(w io.Writer, k *report.Knee) {
	fmt.Fprintf(w, "knee search: corrected p99 ≤ %.0f µs, tolerance %g%%, budget %d probes\n", k.BoundUs, k.Tolerance*100, k.ProbeBudget)
	if k.SaturationMsgsPerS > 0 {
		fmt.Fprintf(w, "  closed loop: %.0f msgs/s, the top of the bracket\n", k.SaturationMsgsPerS)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  probe\toffered/s\tachieved/s\tp99 µs\tincomplete\theld\t\n")
	for i, p := range k.Probes {
		held := "yes"
		if !p.Held {
			held = "no"
		}
		if p.MeterLimited {
			held += " (meter-limited)"
		}
		if p.HostLimited {
			held += " (host-limited)"
		}
		fmt.Fprintf(tw, "  %d\t%.0f\t%.0f\t%.0f\t%d\t%s\t  %s\n", i+1, p.Rate, p.MsgsPerSec, p.P99us, p.Incomplete, held, p.Why)
	}
	tw.Flush()
	switch {
	case k.RateMsgsPerS > 0 && k.MeterLimited:
		fmt.Fprintf(w, "knee: %.0f msgs/s (METER-LIMITED)\n", k.RateMsgsPerS)
	case k.RateMsgsPerS > 0:
		fmt.Fprintf(w, "knee: %.0f msgs/s\n", k.RateMsgsPerS)
	default:
		fmt.Fprintf(w, "knee: none found\n")
	}
	if failed := lowestFailedAbove(k); k.RateMsgsPerS > 0 && failed > 0 {
		fmt.Fprintf(w, "  between %.0f (held) and %.0f msgs/s (failed), %.1f%% apart\n", k.RateMsgsPerS, failed, (failed/k.RateMsgsPerS-1)*100)
	}
	if k.Note != "" {
		fmt.Fprintf(w, "  %s\n", k.Note)
	}
	if k.RateMsgsPerS > 0 {
		fmt.Fprintf(w, "the knee's own probe:\n")
	} else {
		fmt.Fprintf(w, "the last probe:\n")
	}
}

// checkKneeFlags refuses -knee flags that make no sense, alone or with the rest.
func checkKneeFlags(o *options) error {
	k := o.knee
	switch {
	case k.bound < 0:
		return fmt.Errorf("-knee %v: want a positive p99 bound, such as 1ms", k.bound)
	case k.bound == 0:
		return nil
	case o.rate > 0:
		return fmt.Errorf("-knee searches the rate; drop -rate %d", o.rate)
	case o.repeat > 1:
		return fmt.Errorf("-knee runs one probe per rate; drop -repeat %d (lengthen -d for steadier probes)", o.repeat)
	case o.messages > 0:
		return fmt.Errorf("-knee probes run for -d; drop -messages %d", o.messages)
	case k.tolerance <= 0 || k.tolerance >= 1:
		return fmt.Errorf("-knee-tolerance %g: want a fraction between 0 and 1, such as 0.05", k.tolerance)
	case k.probes < 1:
		return fmt.Errorf("-knee-probes %d: want at least 1", k.probes)
	case k.min < 0 || k.max < 0:
		return errors.New("-knee-min and -knee-max must not be negative")
	case k.max > 0 && k.min >= k.max:
		return fmt.Errorf("-knee-min %d is not below -knee-max %d", k.min, k.max)
	}
	return nil
}
