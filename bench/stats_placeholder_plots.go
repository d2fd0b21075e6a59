package bench

// TEMPORARY: the stats helper's bench/stats.go provides Estimate and Estimated, and the runner's
// bench/rows.go and bench/matrix.go CRefName and Headline; these stand-ins exist only so the plots
// branch compiles on its own. The coordinator deletes this file at merge.

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

// CRefName is the row of the C reference server (bench/reference/), which every chart draws as
// the floor: black and dashed, so the models read against it.
const CRefName = "C-ref"

// Headline is the cell the ranked figures lead with.
const Headline = "conns=1000"
