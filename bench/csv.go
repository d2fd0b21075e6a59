package bench

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"strconv"
)

// CSVHeader are summary.csv's columns. One row per model × cell × statistic: the statistic's
// mean over the cell's runs with its 95% interval, and its ratio to the baseline's (paired by
// repeat round, see Ratio) with that interval. A number that does not exist (no interval from
// one run, no baseline, n/a) is an empty field, never a zero.
var CSVHeader = []string{
	"model", "cell", "sweep", "x", "statistic", "unit", "runs",
	"mid", "ci95_lo", "ci95_hi",
	"ratio_to_baseline", "ratio_ci95_lo", "ratio_ci95_hi",
	"na_reason",
}

// WriteCSV writes summary.csv to path: every statistic of StatisticsOf(cell) for every row and
// cell, in row order, cells within. A row that could not run a cell still has its lines, with
// the reason in na_reason, so that a reader filtering by statistic sees it rather than a gap.
func WriteCSV(path string, results []*Result, cells []Cell) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("summary CSV: %w", err)
	}
	w := csv.NewWriter(f)
	werr := writeCSV(w, results, cells)
	if cerr := f.Close(); werr == nil && cerr != nil {
		werr = fmt.Errorf("summary CSV %s: %w", path, cerr)
	}
	return werr
}

func writeCSV(w *csv.Writer, results []*Result, cells []Cell) error {
	g := newGrid(results)
	if err := w.Write(CSVHeader); err != nil {
		return fmt.Errorf("summary CSV: %w", err)
	}
	for _, row := range g.rows {
		for _, c := range cells {
			r := g.at(row, c)
			if r == nil {
				continue // the row was not run in this cell at all (not selected)
			}
			base := g.at(Baseline, c)
			for _, st := range StatisticsOf(c) {
				e := st.Estimate(r)
				rec := []string{row, c.Name, c.Sweep, number(c.X), st.Name, st.Unit, strconv.Itoa(e.N), "", "", "", "", "", "", r.NA}
				if e.N > 0 {
					rec[7] = number(e.Mid)
					if e.Interval() {
						rec[8], rec[9] = number(e.Lo), number(e.Hi)
					}
				}
				if ratio, ok := st.Ratio(r, base); ok && e.N > 0 {
					rec[10] = number(ratio.Mid)
					if ratio.Interval() {
						rec[11], rec[12] = number(ratio.Lo), number(ratio.Hi)
					}
				}
				if err := w.Write(rec); err != nil {
					return fmt.Errorf("summary CSV: %w", err)
				}
			}
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("summary CSV: %w", err)
	}
	return nil
}

// number is a value in the shortest decimal that reads back exactly, without an exponent (so
// that spreadsheets see a number); empty for one that does not exist.
func number(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
