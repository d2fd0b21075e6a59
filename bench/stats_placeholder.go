package bench

// TEMPORARY: the stats helper's bench/stats.go provides the real Converged (a 95 % interval of
// each ratio, paired by round); the coordinator deletes this file at merge.

import (
	"math"

	"echobench/report"
)

// Converged reports whether every row's ratio to baseline in cell is known to within ±tol: here,
// crudely, whether the per-round ratios' spread (two standard errors) is within tol of their
// mean. Rows without runs are aside; a row with one run is not converged.
func Converged(results []*Result, cell Cell, baseline string, tol float64) bool {
	metric := func(s report.Summary) float64 { return s.MsgsPerSec }
	if cell.Reconnect {
		metric = func(s report.Summary) float64 { return s.NewConnsPerSec }
	}
	var base *Result
	for _, r := range results {
		if r.Cell == cell.Name && r.Row.Name == baseline {
			base = r
		}
	}
	if base == nil || len(base.Runs) < 2 {
		return base == nil || len(base.Runs) == 0
	}
	byRound := map[int]float64{}
	for i, s := range base.Runs {
		byRound[base.Rounds[i]] = metric(s)
	}
	for _, r := range results {
		if r.Cell != cell.Name || len(r.Runs) == 0 || r.Row.Name == baseline {
			continue
		}
		var ratios []float64
		for i, s := range r.Runs {
			if b := byRound[r.Rounds[i]]; b > 0 {
				ratios = append(ratios, metric(s)/b)
			}
		}
		if len(ratios) < 2 {
			return false
		}
		mean, ss := 0.0, 0.0
		for _, x := range ratios {
			mean += x
		}
		mean /= float64(len(ratios))
		for _, x := range ratios {
			ss += (x - mean) * (x - mean)
		}
		se := math.Sqrt(ss/float64(len(ratios)-1)) / math.Sqrt(float64(len(ratios)))
		if 2*se > tol*mean {
			return false
		}
	}
	return true
}
