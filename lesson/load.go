package lesson

import (
	"fmt"
	"math"

	"echobench/bench"
	"echobench/report"
)

// The windows of every echobench run of the lesson: short, because the lesson runs some fifty of
// them in its ten minutes, and long enough for a few hundred thousand echoes at load.
const (
	window = "1s"
	warmup = "300ms"
)

// loadArgs is an echobench command line for model with the lesson's windows and extra flags
// (load shape and server flags alike, which echobench passes to its -model child).
func loadArgs(model string, extra ...string) []string {
	return append([]string{"-model", model, "-d", window, "-warmup", warmup}, extra...)
}

// idleRate is the open-loop rate of an "idle" cell for c connections: two 64 B messages per
// connection per second, as bench's idle cells send, so the server has almost nothing to do.
func idleRate(c int) string { return fmt.Sprint(2 * c) }

// usPerMsg is the server's CPU in µs per echoed message over the window (bench's statistic).
func usPerMsg(s report.Summary) float64 { return bench.StatServerUsMsg.Of(s) }

// series collects the summaries of one configuration over repeat rounds, as bench.Result, so
// bench's estimates and paired ratios apply.
type series struct{ bench.Result }

func (s *series) add(r *report.Report, round int) {
	s.Runs = append(s.Runs, r.Summary)
	s.Rounds = append(s.Rounds, round)
}

// estimate is bench's mean and 95% interval of metric over the series.
func (s *series) estimate(metric func(report.Summary) float64) bench.Estimate {
	return bench.Estimated(&s.Result, metric)
}

// ratioTo is bench's paired ratio of s to base with its 95% interval; NaN Mid when there is none.
func (s *series) ratioTo(base *series, metric func(report.Summary) float64) bench.Estimate {
	e, ok := bench.Ratio(&s.Result, &base.Result, metric)
	if !ok {
		return bench.Estimate{Mid: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	return e
}

// order is which of two rows runs first in round r: alternated, as bench alternates its rows, so
// that a drift of the machine does not always favour the same one.
func order(r int, a, b string) []string {
	if r%2 == 0 {
		return []string{a, b}
	}
	return []string{b, a}
}

// intervalNote writes an estimate as "mid (lo–hi)".
func intervalNote(e bench.Estimate) string {
	if e.N < 2 {
		return fmt.Sprintf("%.3g (1 run)", e.Mid)
	}
	return fmt.Sprintf("95%% interval %s–%s over %d rounds", FormatValue(e.Lo, ""), FormatValue(e.Hi, ""), e.N)
}
