package bench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"echobench/report"
)

// Figure is one plot Plots wrote, for index.md: the files, what it shows and how to read it.
type Figure struct {
	File      string // the PNG, relative to the results directory
	SVG       string // the same figure as SVG, relative to the results directory
	Title     string
	HowToRead string // one sentence: what to look for
	// Gaps are the points left out, each with its row, cell and reason ("select at
	// conns=10000: select(2) cannot watch fd 1024 or above"): an n/a is a gap in a line or an
	// empty bar, and the reason is said here rather than guessed at from the picture.
	Gaps []string
	// Notes qualify points that are drawn: a latency that is partly echobench's own lag, a
	// baseline that could not be subtracted.
	Notes []string
}

// Plots draws the comparison into dir, each figure as PNG and SVG, and returns them in reading
// order. A figure is drawn when its sweep has cells: the headline cell (ranked bars of msgs/s
// and server CPU per message), throughput, server CPU per message and RSS per connection against
// connections, throughput against message size, latency against offered rate (p99, then p50 and
// p99.9), reconnect (ranked bars) and the knee per model. The pipeline sweep is left to the
// tables: two depths per row make a pair of numbers, not a curve.
//
// Every row keeps one style (colour, marker, dashes) across all figures, the C reference is
// drawn black and dashed as the floor, and every figure carries the conditions it was measured
// under, read from the JSON reports themselves, so that a figure copied away from its directory
// still says what it shows. A point a row could not measure is a gap, listed with its reason in
// the Figure; a figure that fails to draw does not stop the others, and the error names it.
func Plots(dir string, results []*Result, cells []Cell) ([]Figure, error) {
	if len(cells) == 0 || len(results) == 0 {
		return nil, nil // nothing was measured, so there is nothing to draw
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots directory: %w", err)
	}
	d := newPlotData(results, cells)
	var figs []Figure
	var errs []error
	for _, draw := range []func(*plotData, string) (*Figure, error){
		headlineFigure,
		throughputConnsFigure,
		cpuConnsFigure,
		rssConnsFigure,
		throughputSizeFigure,
		latencyRateFigure,
		latencyRateTailsFigure,
		reconnectFigure,
		kneeFigure,
	} {
		fig, err := draw(d, dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fig != nil {
			figs = append(figs, *fig)
		}
	}
	return figs, errors.Join(errs...)
}

// plotData is what every figure reads: the results by row and cell, the reports behind them,
// and the palette.
type plotData struct {
	results []*Result
	cells   []Cell
	rows    []string // in the order of the results
	byCell  map[[2]string]*Result
	reports map[string]*report.Report
	palette palette
}

func newPlotData(results []*Result, cells []Cell) *plotData {
	d := &plotData{
		results: results,
		cells:   cells,
		byCell:  map[[2]string]*Result{},
		reports: loadReports(results),
		palette: newPalette(results),
	}
	for _, r := range results {
		if _, ok := d.byCell[[2]string{r.Row.Name, r.Cell}]; !ok {
			d.byCell[[2]string{r.Row.Name, r.Cell}] = r
		}
		if !contains(d.rows, r.Row.Name) {
			d.rows = append(d.rows, r.Row.Name)
		}
	}
	return d
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// result is the (row, cell) result, or nil when the row was not run there at all.
func (d *plotData) result(row string, cell Cell) *Result {
	return d.byCell[[2]string{row, cell.Name}]
}

// sweep returns the cells of one sweep, by X.
func (d *plotData) sweep(name string) []Cell {
	var picked []Cell
	for _, c := range d.cells {
		if c.Sweep == name {
			picked = append(picked, c)
		}
	}
	sort.SliceStable(picked, func(i, j int) bool { return picked[i].X < picked[j].X })
	return picked
}

// headline is the cell the ranked bars show: the matrix's Headline cell, or failing that
// (an older matrix: DefaultCells) 1,000 connections × 64 B ping-pong, or the first cell.
func (d *plotData) headline() Cell {
	for _, c := range d.cells {
		if c.Name == Headline {
			return c
		}
	}
	for _, c := range d.cells {
		if c.Sweep == SweepConns && c.X == 1000 {
			return c
		}
	}
	return d.cells[0]
}

// missing is why a (row, cell) has no figure: the result's n/a reason, or what else is lacking.
func missing(r *Result, lacking string) string {
	switch {
	case r == nil:
		return "not run"
	case len(r.Runs) == 0 && r.NA != "":
		return r.NA
	case len(r.Runs) == 0:
		return "no run produced a report"
	default:
		return lacking
	}
}

// loadReports reads every JSON report behind the results. A file that cannot be read is left
// out: the run behind it already produced a Summary, and the caption says when no report at all
// could be read for a cell.
func loadReports(results []*Result) map[string]*report.Report {
	reports := map[string]*report.Report{}
	for _, r := range results {
		for _, f := range r.Files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var rep report.Report
			if json.Unmarshal(b, &rep) == nil {
				reports[f] = &rep
			}
		}
	}
	return reports
}

// cellResults returns the results of one cell, in row order.
func cellResults(results []*Result, cell Cell) []*Result {
	var picked []*Result
	for _, r := range results {
		if r.Cell == cell.Name {
			picked = append(picked, r)
		}
	}
	return picked
}

// conditions is the caption of one cell: the load, the window, and where it ran. It is read
// from the reports; if they disagree (one row unpinned, say), the caption says so rather than
// showing the first row's conditions as everyone's.
func conditions(cell Cell, results []*Result, reports map[string]*report.Report) string {
	var first *report.Report
	differ := false
	runs := 0
	for _, r := range cellResults(results, cell) {
		runs = max(runs, len(r.Runs))
		for _, f := range r.Files {
			rep := reports[f]
			switch {
			case rep == nil:
			case first == nil:
				first = rep
			case describe(rep) != describe(first):
				differ = true
			}
		}
	}
	if first == nil {
		return fmt.Sprintf("cell %s: echobench %s; no report could be read, so pinning and machine are unknown",
			cell.Name, strings.Join(cell.Args, " "))
	}
	caption := fmt.Sprintf("cell %s: %s\n%d run(s) per model, %s", cell.Name, describe(first), runs, first.Env.Start)
	if differ {
		caption += "\nCONDITIONS DIFFER BETWEEN ROWS: see the JSON reports"
	}
	return caption
}

// describe states one report's load and environment in two lines, leaving out what differs
// between rows by design (model, address, start time, thread counts).
func describe(rep *report.Report) string {
	return strings.Join(loadFacts(rep), ", ") + "\n" + envLine(rep.Env)
}

// loadFacts are the parts of a report's load, each on its own so that a sweep's caption can
// leave out the one that varies along its axis.
func loadFacts(rep *report.Report) []string {
	s := rep.Settings
	sizes := make([]string, len(s.Sizes))
	for i, n := range s.Sizes {
		sizes[i] = fmt.Sprintf("%d B", n)
	}
	facts := []string{fmt.Sprintf("%d conns × %s", s.Conns, strings.Join(sizes, "/"))}
	if s.Rate > 0 {
		facts = append(facts, fmt.Sprintf("open loop at %d msgs/s", s.Rate))
	} else {
		facts = append(facts, "closed loop")
	}
	if s.Pipeline > 1 {
		facts = append(facts, fmt.Sprintf("pipeline %d", s.Pipeline))
	}
	if s.Reconnect > 0 {
		facts = append(facts, fmt.Sprintf("reconnect after %d echo(es)", s.Reconnect))
	}
	return append(facts, fmt.Sprintf("%s warmup + %s measured", seconds(s.WarmupS), seconds(s.DurationS)))
}

// envLine is where a report ran: pinning, machine and the code.
func envLine(e report.Env) string {
	pin := e.Pinning
	var pinning string
	switch {
	case pin.Enabled && pin.ServerCPUs != "":
		pinning = fmt.Sprintf("server on CPU %s, echobench on CPU %s", pin.ServerCPUs, pin.ClientCPUs)
	case pin.Enabled: // echobench pinned itself but not a server it did not start (-addr)
		pinning = fmt.Sprintf("echobench on CPU %s, %s", pin.ClientCPUs, cmp.Or(pin.Reason, "server unpinned"))
	case pin.Reason != "":
		pinning = "unpinned (" + pin.Reason + ")"
	default:
		pinning = "unpinned"
	}
	commit := e.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return fmt.Sprintf("%s; GOMAXPROCS %d; %d× %s; kernel %s; %s; commit %s",
		pinning, e.GOMAXPROCS, e.Cores, e.CPUModel, e.Kernel, e.GoVersion, commit)
}

// sweepCaption states the conditions shared by a figure's cells: the load facts every report
// agrees on (the swept one differs, and the axis says it), the environment, and how many runs
// stand behind each point and how they are summarised (drawn, as "line: their mean").
func (d *plotData) sweepCaption(cells []Cell, drawn string) string {
	var reps []*report.Report
	var repRows []string // the row of each of reps
	minRuns, maxRuns := math.MaxInt, 0
	for _, c := range cells {
		for _, row := range d.rows {
			r := d.result(row, c)
			if r == nil || r.NA != "" && len(r.Runs) == 0 {
				continue
			}
			minRuns, maxRuns = min(minRuns, len(r.Runs)), max(maxRuns, len(r.Runs))
			for _, f := range r.Files {
				if rep := d.reports[f]; rep != nil {
					reps = append(reps, rep)
					repRows = append(repRows, row)
				}
			}
		}
	}
	if len(reps) == 0 {
		var names []string
		for _, c := range cells {
			names = append(names, c.Name)
		}
		return fmt.Sprintf("cells %s: no report could be read, so load, pinning and machine are unknown",
			strings.Join(names, ", "))
	}
	// A fact every report states is shared; the others vary with the axis.
	count := map[string]int{}
	for _, rep := range reps {
		for _, f := range loadFacts(rep) {
			count[f]++
		}
	}
	var shared []string
	for _, f := range loadFacts(reps[0]) {
		if count[f] == len(reps) {
			shared = append(shared, f)
		}
	}
	env := envCaption(reps, repRows)
	runs := fmt.Sprintf("%d run(s) per point", maxRuns)
	if minRuns < maxRuns {
		runs = fmt.Sprintf("%d–%d runs per point", minRuns, maxRuns)
	}
	first := fmt.Sprintf("%s (%s); %s", runs, drawn, reps[0].Env.Start)
	if len(shared) > 0 {
		first = strings.Join(shared, ", ") + "; " + first
	}
	return first + "\n" + env
}

// envCaption is the environment most of the reports ran in, then, for rows that ran in another
// (the C reference, which echobench did not start and so did not pin itself), what differs, so
// that a difference is stated rather than hidden behind the first row's conditions.
func envCaption(reps []*report.Report, rows []string) string {
	var lines []string
	byLine := map[string][]string{}
	for i, rep := range reps {
		l := envLine(rep.Env)
		if _, ok := byLine[l]; !ok {
			lines = append(lines, l)
		}
		if !contains(byLine[l], rows[i]) {
			byLine[l] = append(byLine[l], rows[i])
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return len(byLine[lines[i]]) > len(byLine[lines[j]]) })
	caption := lines[0]
	common := map[string]bool{}
	for _, part := range strings.Split(lines[0], "; ") {
		common[part] = true
	}
	for _, l := range lines[1:] {
		var differs []string
		for _, part := range strings.Split(l, "; ") {
			if !common[part] {
				differs = append(differs, part)
			}
		}
		caption += fmt.Sprintf("\nexcept %s: %s", strings.Join(byLine[l], ", "), strings.Join(differs, "; "))
	}
	return caption
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// bytesLabel writes a size in B, KiB or MiB, as the size sweep names its cells.
func bytesLabel(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.3g MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.3g KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
