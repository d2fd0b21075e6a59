package bench

// TEMPORARY: the stats helper's bench/stats.go provides Estimate and Estimated; this stand-in
// exists only so the plots branch compiles on its own. The coordinator deletes this file at merge.

import "echobench/report"

// Estimate is a statistic of one result with its 95 % interval over the runs.
type Estimate struct {
	Mid, Lo, Hi float64
	N           int
}

// Estimated is the mean of metric over r's runs with its Student's t 95 % interval.
func Estimated(r *Result, metric func(report.Summary) float64) Estimate {
	xs := make([]float64, 0, len(r.Runs))
	for _, s := range r.Runs {
		xs = append(xs, metric(s))
	}
	mid, _, lo, hi := report.MeanCI95(xs)
	return Estimate{Mid: mid, Lo: lo, Hi: hi, N: len(xs)}
}
