package bench

import (
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"

	"echobench/report"
)

// Confidence is the two-sided coverage of every interval the harness prints, plots and writes.
const Confidence = 0.95

// Estimate is a statistic over a cell's repeated runs: its middle and its 95% confidence
// interval. N is the number of runs (for a ratio, of the pairs) it rests on; with N = 1 there is
// no interval, Lo = Hi = Mid, and the table says "1 run" rather than inventing one.
type Estimate struct {
	Mid, Lo, Hi float64
	N           int
}

// Interval reports whether the estimate has an interval at all (at least two runs).
func (e Estimate) Interval() bool { return e.N >= 2 }

// Overlaps reports whether two estimates' intervals share a point: then the data do not order
// the two, and the ranked table prints ≈ between them. A single run is a point, which overlaps
// only an interval containing it; the table calls no tie for one, since a point says nothing
// about the spread that would make two rows indistinguishable.
func (e Estimate) Overlaps(o Estimate) bool {
	return e.N > 0 && o.N > 0 && e.Lo <= o.Hi && o.Lo <= e.Hi
}

// HalfWidth is the larger distance from Mid to an end of the interval, relative to Mid: the ±
// the table prints, and what Converged compares with its tolerance. Ratios are asymmetric
// around their middle (they are back-transformed from logarithms), so the larger side counts.
func (e Estimate) HalfWidth() float64 {
	if e.Mid == 0 {
		if e.Lo == 0 && e.Hi == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Max(e.Hi-e.Mid, e.Mid-e.Lo) / math.Abs(e.Mid)
}

// sample is one row's values of one statistic in one cell, with the repeat round of each value,
// so that it can be paired with the baseline's value of the same round.
type sample struct {
	values []float64
	rounds []int // nil when the rounds are not known: no pairing
}

// summarySample takes metric of each run. A value that is not a number (a CPU per message of a
// run that echoed nothing) is left out rather than averaged in.
func summarySample(r *Result, metric func(report.Summary) float64) sample {
	var s sample
	if r == nil {
		return s
	}
	paired := len(r.Rounds) == len(r.Runs)
	for i, run := range r.Runs {
		v := metric(run)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		s.values = append(s.values, v)
		if paired {
			s.rounds = append(s.rounds, r.Rounds[i])
		}
	}
	if !paired {
		s.rounds = nil
	}
	return s
}

// kneeSample is each run's knee rate (0 where even the lowest probe broke the bound). The runs
// are paired by round when the runner recorded one search per round.
func kneeSample(r *Result) sample {
	var s sample
	if r == nil {
		return s
	}
	for _, k := range r.Knees {
		s.values = append(s.values, k.RateMsgsPerS)
	}
	if len(r.Rounds) == len(r.Knees) {
		s.rounds = append([]int(nil), r.Rounds...)
	}
	return s
}

// Estimated is the mean of metric over r's runs with its Student's t 95% interval, for the
// tables, the CSV and the plots' bands. The mean rather than the median because with the 3 to 10
// runs of a cell the mean's interval is the one with a known coverage.
func Estimated(r *Result, metric func(report.Summary) float64) Estimate {
	return meanInterval(summarySample(r, metric).values)
}

// EstimatedKnee is the mean knee rate over r's -knee searches with its 95% interval.
func EstimatedKnee(r *Result) Estimate {
	return meanInterval(kneeSample(r).values)
}

// meanInterval is the mean and its t interval: mean ± t(0.975, n-1)·s/√n.
func meanInterval(xs []float64) Estimate {
	switch len(xs) {
	case 0:
		return Estimate{}
	case 1:
		return Estimate{Mid: xs[0], Lo: xs[0], Hi: xs[0], N: 1}
	}
	mean, sd := stat.MeanStdDev(xs, nil)
	half := tQuantile(float64(len(xs)-1)) * sd / math.Sqrt(float64(len(xs)))
	return Estimate{Mid: mean, Lo: mean - half, Hi: mean + half, N: len(xs)}
}

// tQuantile is Student's t at (1+Confidence)/2 for df degrees of freedom (df need not be whole:
// Welch's approximation gives fractional ones).
func tQuantile(df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile((1 + Confidence) / 2)
}

// Ratio is r's metric over the baseline's, with its 95% interval; false when there is no ratio
// to give (no baseline, no runs on either side, or a baseline of zero).
//
// Runs of different rows in one repeat round ran back to back, so the machine's drift (another
// tenant, the clock) hits both alike: the ratio is formed per round and the rounds' log ratios
// get a Student's t interval, which is then back-transformed. Logarithms because a ratio is
// multiplicative (1.25× and 0.8× are equally far from 1) and its spread grows with its size; the
// middle is the geometric mean of the per-round ratios. When fewer than two rounds pair up (the
// rows ran in different rounds, or rounds are unknown), the fallback compares the two rows' log
// means unpaired, with Welch's interval, which carries the drift the pairing would have removed.
// A value of zero or below has no logarithm and is left out: a ratio to nothing says nothing.
func Ratio(r, base *Result, metric func(report.Summary) float64) (Estimate, bool) {
	if r == nil || base == nil {
		return Estimate{}, false
	}
	return ratioOf(summarySample(r, metric), summarySample(base, metric))
}

// RatioKnee is Ratio for the knee rates of two rows' -knee searches.
func RatioKnee(r, base *Result) (Estimate, bool) {
	if r == nil || base == nil {
		return Estimate{}, false
	}
	return ratioOf(kneeSample(r), kneeSample(base))
}

func ratioOf(s, base sample) (Estimate, bool) {
	s, base = positive(s), positive(base)
	switch {
	case len(s.values) == 0 || len(base.values) == 0:
		return Estimate{}, false
	case len(s.values) == 1 && len(base.values) == 1:
		// One run each: the plain quotient, which the detour through logarithms would round
		// in its last digit.
		q := s.values[0] / base.values[0]
		return Estimate{Mid: q, Lo: q, Hi: q, N: 1}, true
	}
	logs, baseLogs := logOf(s), logOf(base)
	if d := pairedDiffs(logs, baseLogs); len(d) >= 2 {
		return expEstimate(meanInterval(d)), true
	}
	return expEstimate(welch(logs.values, baseLogs.values)), true
}

// positive keeps the values above zero, with their rounds: only they have a logarithm.
func positive(s sample) sample {
	var p sample
	for i, v := range s.values {
		if v <= 0 {
			continue
		}
		p.values = append(p.values, v)
		if s.rounds != nil {
			p.rounds = append(p.rounds, s.rounds[i])
		}
	}
	return p
}

// logOf is the natural logarithm of every value, keeping its round.
func logOf(s sample) sample {
	l := sample{rounds: s.rounds}
	for _, v := range s.values {
		l.values = append(l.values, math.Log(v))
	}
	return l
}

// pairedDiffs is a - base for every round both have. A round that appears twice on one side
// (the runner never does that) pairs its first value only.
func pairedDiffs(a, base sample) []float64 {
	if a.rounds == nil || base.rounds == nil {
		return nil
	}
	byRound := map[int]float64{}
	for i, r := range base.rounds {
		if _, ok := byRound[r]; !ok {
			byRound[r] = base.values[i]
		}
	}
	var d []float64
	used := map[int]bool{}
	for i, r := range a.rounds {
		b, ok := byRound[r]
		if !ok || used[r] {
			continue
		}
		used[r] = true
		d = append(d, a.values[i]-b)
	}
	return d
}

// welch is the difference of two means with Welch's t interval (unequal variances,
// Welch–Satterthwaite degrees of freedom). With a single value on either side there is no
// variance to estimate, so it is a point: N = 1.
func welch(a, b []float64) Estimate {
	ma, va := stat.MeanVariance(a, nil)
	mb, vb := stat.MeanVariance(b, nil)
	diff := ma - mb
	n := min(len(a), len(b))
	if n < 2 {
		return Estimate{Mid: diff, Lo: diff, Hi: diff, N: 1}
	}
	qa, qb := va/float64(len(a)), vb/float64(len(b))
	se := math.Sqrt(qa + qb)
	if se == 0 {
		return Estimate{Mid: diff, Lo: diff, Hi: diff, N: n}
	}
	df := (qa + qb) * (qa + qb) / (qa*qa/float64(len(a)-1) + qb*qb/float64(len(b)-1))
	half := tQuantile(df) * se
	return Estimate{Mid: diff, Lo: diff - half, Hi: diff + half, N: n}
}

func expEstimate(e Estimate) Estimate {
	return Estimate{Mid: math.Exp(e.Mid), Lo: math.Exp(e.Lo), Hi: math.Exp(e.Hi), N: e.N}
}

// Converged reports whether a cell has been repeated enough: the runner repeats a cell until
// this holds or its cap is reached. The rule:
//
//   - the statistic is the cell's main one: new connections/s for reconnect cells, the knee
//     rate for knee cells, RSS per connection for idle cells, msgs/s for every other cell;
//   - a row whose result carries an n/a reason is set aside: it failed in some run, and
//     repeating the cell will not give it an interval (its figures carry the reason instead);
//   - every other row needs at least 2 runs, and so does the baseline: one run has no interval,
//     so nothing about it can have converged;
//   - every row's ratio to the baseline (paired by round) must have a 95% interval within ±tol
//     of its middle, on the wider side (tol is relative: 0.05 is ±5%). The baseline's own ratio
//     is exactly 1; its noise is in every other row's paired ratio. Without a usable baseline in
//     the cell (not selected, or n/a), each row's own interval of the statistic is held to tol.
//
// A cell in which every row is n/a has nothing left to repeat for and counts as converged.
func Converged(results []*Result, cell Cell, baseline string, tol float64) bool {
	main := mainStatistic(cell)
	var base *Result
	var rows []*Result
	for _, r := range results {
		if r.Cell != cell.Name {
			continue
		}
		if r.Row.Name == baseline && r.NA == "" {
			base = r
		}
		rows = append(rows, r)
	}
	if base != nil && len(main.sample(base).values) < 2 {
		return false
	}
	for _, r := range rows {
		if r.NA != "" {
			continue
		}
		if len(main.sample(r).values) < 2 {
			return false
		}
		var e Estimate
		switch {
		case r == base:
			continue
		case base != nil:
			var ok bool
			if e, ok = ratioOf(main.sample(r), main.sample(base)); !ok {
				e = meanInterval(main.sample(r).values)
			}
		default:
			e = meanInterval(main.sample(r).values)
		}
		if e.N < 2 || e.HalfWidth() > tol {
			return false
		}
	}
	return true
}

// Statistic is one figure the harness reports per (row, cell): its name in the CSV, its unit,
// and how a run's summary gives it. It is the one home of each per-run formula the table, the
// CSV and the plots share.
type Statistic struct {
	Name string // the CSV's statistic column: "msgs_per_s", "latency_p99", ...
	Unit string // the CSV's unit column, ASCII: "msgs/s", "us", "bytes", "%"
	// Of gives the statistic of one run; nil for the knee rate, which comes from the runs'
	// -knee searches rather than their summaries.
	Of func(report.Summary) float64
}

// The statistics of a cell. The per-message and per-connection costs divide the server's CPU
// share of the window by the rate, so they are the CPU the server spent per unit of work; on
// two loopback cores, where echobench and the server saturate together, they are what tells the
// servers apart when msgs/s is the pair's limit.
var (
	StatMsgsPerSec   = Statistic{"msgs_per_s", "msgs/s", func(s report.Summary) float64 { return s.MsgsPerSec }}
	StatMBPerSec     = Statistic{"mb_per_s", "MB/s", func(s report.Summary) float64 { return s.MBPerSec }}
	StatP50          = Statistic{"latency_p50", "us", func(s report.Summary) float64 { return s.LatencyP50us }}
	StatP99          = Statistic{"latency_p99", "us", func(s report.Summary) float64 { return s.LatencyP99us }}
	StatP999         = Statistic{"latency_p99_9", "us", func(s report.Summary) float64 { return s.LatencyP999us }}
	StatServerUsMsg  = Statistic{"server_cpu_per_msg", "us", func(s report.Summary) float64 { return perSecond(s.ServerCPUPct, s.MsgsPerSec) }}
	StatServerCPU    = Statistic{"server_cpu_pct", "%", func(s report.Summary) float64 { return s.ServerCPUPct }}
	StatClientCPU    = Statistic{"client_cpu_pct", "%", func(s report.Summary) float64 { return s.ClientCPUPct }}
	StatServerRSS    = Statistic{"server_peak_rss", "bytes", func(s report.Summary) float64 { return float64(s.ServerPeakRSSBytes) }}
	StatRSSPerConn   = Statistic{"rss_per_conn", "bytes", rssPerConn}
	StatThreads      = Statistic{"server_peak_threads", "threads", func(s report.Summary) float64 { return float64(s.ServerPeakThreads) }}
	StatProcesses    = Statistic{"server_processes", "processes", func(s report.Summary) float64 { return float64(s.ServerProcesses) }}
	StatNewConns     = Statistic{"new_conns_per_s", "conns/s", func(s report.Summary) float64 { return s.NewConnsPerSec }}
	StatServerUsConn = Statistic{"server_cpu_per_conn", "us", func(s report.Summary) float64 { return perSecond(s.ServerCPUPct, s.NewConnsPerSec) }}
	StatConnectP99   = Statistic{"connect_p99", "us", func(s report.Summary) float64 { return s.ConnectP99us }}
	StatKneeRate     = Statistic{Name: "knee_rate", Unit: "msgs/s"}
	StatLossPct      = Statistic{"loss_pct", "%", func(s report.Summary) float64 {
		if s.UDP == nil {
			return 0
		}
		return s.UDP.LossPct
	}}
	commonStatistics = []Statistic{StatMsgsPerSec, StatMBPerSec, StatP50, StatP99, StatP999, StatServerUsMsg, StatServerCPU, StatClientCPU, StatServerRSS, StatThreads, StatProcesses}
	reconnectExtra   = []Statistic{StatNewConns, StatServerUsConn, StatConnectP99}
	idleExtra        = []Statistic{StatRSSPerConn}
	udpExtra         = []Statistic{StatLossPct}
)

// perSecond is the server's CPU in µs per unit of work: its share of a core over the rate. NaN
// when nothing was done, which the estimates leave out.
func perSecond(cpuPct, perSec float64) float64 {
	if perSec <= 0 {
		return math.NaN()
	}
	return cpuPct / 100 * 1e6 / perSec
}

// rssPerConn is the server's peak RSS over the connections it held. It includes the server's
// fixed footprint, so it falls as connections grow towards the marginal cost of one; the idle
// table also prints that marginal cost, the slope between its two counts.
func rssPerConn(s report.Summary) float64 {
	if s.ConnsEstablished <= 0 {
		return math.NaN()
	}
	return float64(s.ServerPeakRSSBytes) / float64(s.ConnsEstablished)
}

// StatisticsOf are the statistics reported for a cell: the common ones, and those only its
// sweep has (a knee cell has only its knee rate: its summaries are of single probes).
func StatisticsOf(cell Cell) []Statistic {
	switch cell.Sweep {
	case SweepKnee:
		return []Statistic{StatKneeRate}
	case SweepReconnect:
		return append(append([]Statistic(nil), commonStatistics...), reconnectExtra...)
	case SweepIdle:
		return append(append([]Statistic(nil), commonStatistics...), idleExtra...)
	case SweepUDP:
		return append(append([]Statistic(nil), commonStatistics...), udpExtra...)
	}
	return commonStatistics
}

// mainStatistic is the one a cell is judged by: what Converged holds to its tolerance and what
// the cell's table shows. Open-loop cells are judged by msgs/s too, not by p99: a tail
// percentile moves too much between runs to reach ±5% within any cap.
func mainStatistic(cell Cell) Statistic {
	switch cell.Sweep {
	case SweepReconnect:
		return StatNewConns
	case SweepKnee:
		return StatKneeRate
	case SweepIdle:
		return StatRSSPerConn
	}
	return StatMsgsPerSec
}

func (st Statistic) sample(r *Result) sample {
	if st.Of == nil {
		return kneeSample(r)
	}
	return summarySample(r, st.Of)
}

// Estimate is Estimated (or EstimatedKnee) for this statistic.
func (st Statistic) Estimate(r *Result) Estimate {
	return meanInterval(st.sample(r).values)
}

// Ratio is Ratio (or RatioKnee) for this statistic.
func (st Statistic) Ratio(r, base *Result) (Estimate, bool) {
	if r == nil || base == nil {
		return Estimate{}, false
	}
	return ratioOf(st.sample(r), st.sample(base))
}
