package bench

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"echobench/report"
)

// linePoint is one row's value at one cell of a sweep.
type linePoint struct {
	x    float64
	cell string // the cell's name, for the notes
	est  Estimate
	ok   bool
	// ringed points get a grey ring: drawn, but qualified (a meter-limited latency); the
	// figure's notes say why.
	ringed bool
}

// lineSeries is one row's line across a sweep: one point per cell, in X order, gaps included.
type lineSeries struct {
	row    string
	points []linePoint
}

// pointFunc gives a row's point at a cell, or why it has none.
type pointFunc func(r *Result, c Cell) (linePoint, string)

// linePanel is one panel of a line figure: a statistic over a sweep's cells.
type linePanel struct {
	title, yLabel string
	logY          bool
	yTick         func(float64) string // labels a log axis's ticks; nil: k and M suffixes
	cells         []Cell
	value         pointFunc
}

// lineFigure is a figure of one or more line panels sharing the x axis and the legend.
type lineFigure struct {
	base, title, howToRead string
	xLabel                 string
	logX                   bool
	xTick                  func(float64) string // labels the swept values; nil: round linear ticks
	sameY                  bool                 // panels share the y range, to be compared by eye
	panels                 []linePanel
	notes                  []string
}

// series collects every row's points across cells, and the gaps with their reasons, grouped so
// that a row missing every cell for one reason reads as one line.
func (d *plotData) series(cells []Cell, value pointFunc) ([]lineSeries, []string) {
	var all []lineSeries
	var gaps []string
	for _, row := range d.rows {
		s := lineSeries{row: row}
		var reasons []string
		where := map[string][]string{}
		for _, c := range cells {
			r := d.result(row, c)
			pt, why := linePoint{}, ""
			if r != nil && len(r.Runs) > 0 {
				pt, why = value(r, c)
			} else {
				why = missing(r, "")
			}
			pt.cell = c.Name
			if !pt.ok {
				pt = linePoint{x: c.X, cell: c.Name}
				if _, seen := where[why]; !seen {
					reasons = append(reasons, why)
				}
				where[why] = append(where[why], c.Name)
			}
			s.points = append(s.points, pt)
		}
		sort.SliceStable(s.points, func(i, j int) bool { return s.points[i].x < s.points[j].x })
		for _, why := range reasons {
			gaps = append(gaps, fmt.Sprintf("%s at %s: %s", row, strings.Join(where[why], ", "), why))
		}
		all = append(all, s)
	}
	return all, gaps
}

// estimatePoint is the common pointFunc body: the estimate of metric over the runs, at the
// cell's X, if every run has a finite value (and a positive one on a log axis).
func estimatePoint(r *Result, c Cell, metric func(report.Summary) float64, positive bool,
	lacking string) (linePoint, string) {
	kept := &Result{Row: r.Row, Cell: r.Cell, Rounds: r.Rounds}
	for _, s := range r.Runs {
		v := metric(s)
		if math.IsNaN(v) || math.IsInf(v, 0) || positive && v <= 0 {
			continue
		}
		kept.Runs = append(kept.Runs, s)
	}
	if len(kept.Runs) == 0 {
		return linePoint{}, lacking
	}
	if len(kept.Runs) < len(r.Runs) {
		kept.Rounds = nil // no longer aligned with the runs
	}
	return linePoint{x: c.X, est: Estimated(kept, metric), ok: true}, ""
}

// draw renders the figure into dir.
func (f lineFigure) draw(d *plotData, dir string) (*Figure, error) {
	var allCells []Cell
	panelSeries := make([][]lineSeries, len(f.panels))
	var gaps []string
	for i, pn := range f.panels {
		allCells = append(allCells, pn.cells...)
		s, g := d.series(pn.cells, pn.value)
		panelSeries[i] = s
		if len(f.panels) > 1 {
			for k := range g {
				g[k] = pn.title + ": " + g[k]
			}
		}
		gaps = append(gaps, g...)
	}

	var xs []float64
	for _, c := range allCells {
		xs = appendUnique(xs, c.X)
	}
	for _, ss := range panelSeries {
		for _, s := range ss {
			for _, pt := range s.points {
				if pt.ok {
					xs = appendUnique(xs, pt.x)
				}
			}
		}
	}
	sort.Float64s(xs)

	yRanges := make([][2]float64, len(f.panels))
	for i, pn := range f.panels {
		yRanges[i] = yRange(panelSeries[i], pn.logY)
	}
	if f.sameY {
		union := yRanges[0]
		for _, r := range yRanges[1:] {
			union = [2]float64{min(union[0], r[0]), max(union[1], r[1])}
		}
		for i := range yRanges {
			yRanges[i] = union
		}
	}

	leg := newLegend()
	notes := append([]string(nil), f.notes...)
	var panels []*plot.Plot
	var yLabels []string
	drawnRows := map[string]bool{}
	for i, pn := range f.panels {
		p := newPanel(pn.title, f.xLabel)
		yLabels = append(yLabels, pn.yLabel)
		if pn.logY {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = logTicks
			if pn.yTick != nil {
				p.Y.Tick.Marker = logTicksLabelled(pn.yTick)
			}
		} else {
			p.Y.Tick.Marker = siTicks
		}
		tooWide, err := d.addLines(p, panelSeries[i], yRanges[i][0], drawnRows)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", f.base, err)
		}
		if len(tooWide) > 0 {
			prefix := ""
			if len(f.panels) > 1 {
				prefix = pn.title + ": "
			}
			notes = append(notes, fmt.Sprintf("%sintervals wider than ±%.0f %% of the mean are not drawn as "+
				"bands (too few runs to bound them; the CSV has them): %s",
				prefix, maxBandHalfWidth*100, strings.Join(tooWide, ", ")))
		}
		// The ranges are set after the lines are added, because adding a plotter widens the axes
		// to its data, bands included.
		f.setX(p, xs)
		p.Y.Min, p.Y.Max = yRanges[i][0], yRanges[i][1]
		if !anyPoint(panelSeries[i]) {
			noData(p, "(no row has a value here: see the gaps)")
		}
		panels = append(panels, p)
	}
	for _, row := range legendOrder(panelSeries[0], d.rows) {
		leg.add(row, d.palette.of(row), drawnRows[row])
	}

	width := 7.5*vg.Inch*vg.Length(len(f.panels)) + leg.width() + vg.Points(30)
	caption := d.sweepCaption(allCells, "line: their mean, band: its 95 % interval")
	l := layout{title: f.title, caption: caption, panels: panels, yLabels: yLabels, legend: leg,
		width: width, height: max(5.5*vg.Inch, vg.Length(len(d.rows)+2)*17)}
	png, svg, err := l.save(dir, f.base)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", f.base, err)
	}
	return &Figure{File: png, SVG: svg, Title: f.title, HowToRead: f.howToRead, Gaps: gaps, Notes: notes}, nil
}

func (f lineFigure) setX(p *plot.Plot, xs []float64) {
	if len(xs) == 0 {
		xs = []float64{1}
	}
	lo, hi := xs[0], xs[len(xs)-1]
	switch {
	case f.logX && lo > 0:
		p.X.Scale = plot.LogScale{}
		// Half a step of room beyond the outermost cells, so their markers are not cut.
		p.X.Min, p.X.Max = lo/1.6, hi*1.6
	default:
		p.X.Min, p.X.Max = 0, hi*1.05
		if p.X.Max <= 0 {
			p.X.Max = 1
		}
	}
	if f.xTick != nil {
		p.X.Tick.Marker = dataTicks(xs, f.xTick)
	} else {
		p.X.Tick.Marker = siTicks
	}
}

func appendUnique(xs []float64, x float64) []float64 {
	for _, v := range xs {
		if v == x {
			return xs
		}
	}
	return append(xs, x)
}

func anyPoint(series []lineSeries) bool {
	for _, s := range series {
		for _, pt := range s.points {
			if pt.ok {
				return true
			}
		}
	}
	return false
}

// yRange spans every drawn value (the lines, not their bands: with two or three runs a 95 %
// interval can be many times its mean, and an axis stretched to hold it squashes every line
// into a corner; a band that leaves the axis is cut at its edge). A linear axis starts at 0, a
// log one leaves room for the markers.
func yRange(series []lineSeries, logY bool) [2]float64 {
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		for _, pt := range s.points {
			if pt.ok && pt.est.Mid > 0 {
				lo, hi = min(lo, pt.est.Mid), max(hi, pt.est.Mid)
			}
		}
	}
	if logY {
		a, b := logRange(lo, hi)
		return [2]float64{a, b}
	}
	if hi <= 0 {
		return [2]float64{0, 1}
	}
	return [2]float64{0, hi * 1.12}
}

// legendOrder lists rows as their lines end on the right, highest first, so the legend reads
// top to bottom as the lines do: first the rows that reach the last cell, by their value there,
// then those that stop earlier, by how far they got and their value there, then rows with no
// point at all.
func legendOrder(series []lineSeries, rows []string) []string {
	type end struct{ x, y float64 }
	last := map[string]end{}
	for _, s := range series {
		e := end{math.Inf(-1), math.Inf(-1)}
		for _, pt := range s.points {
			if pt.ok {
				e = end{pt.x, pt.est.Mid}
			}
		}
		last[s.row] = e
	}
	ordered := append([]string(nil), rows...)
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := last[ordered[i]], last[ordered[j]]
		if a.x != b.x {
			return a.x > b.x
		}
		return a.y > b.y
	})
	return ordered
}

// maxBandHalfWidth is the widest interval, relative to its mean, drawn as a band. With two runs
// Student's t is 12.7, so any real spread gives an interval wider than the mean itself; ten
// such bands cover the whole panel and hide every line. Those points are listed in the notes
// instead, and the CSV keeps their intervals.
const maxBandHalfWidth = 0.5

// addLines draws every row's bands, then lines, then markers, so that no band covers a line;
// the reference row goes last, on top, as the floor the others are read against. It returns
// the points whose interval was too wide to draw.
func (d *plotData) addLines(p *plot.Plot, series []lineSeries, floor float64, drawn map[string]bool) ([]string, error) {
	ordered := append([]lineSeries(nil), series...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[j].row == CRefName && ordered[i].row != CRefName })
	var bands, lines, markers []plot.Plotter
	var tooWide []string
	for _, s := range ordered {
		style := d.palette.of(s.row)
		for _, seg := range segments(s.points) {
			for i, pt := range seg {
				e := pt.est
				if e.N >= 2 && (e.Hi-e.Mid > maxBandHalfWidth*e.Mid || e.Mid-e.Lo > maxBandHalfWidth*e.Mid) {
					tooWide = append(tooWide, fmt.Sprintf("%s at %s (%s–%s)", s.row, pt.cell, fmtCount(e.Lo), fmtCount(e.Hi)))
					seg[i].est.Lo, seg[i].est.Hi = e.Mid, e.Mid
				}
			}
			drawn[s.row] = true
			if b, err := band(seg, style, floor); err != nil {
				return nil, err
			} else if b != nil {
				bands = append(bands, b)
			}
			xys := make(plotter.XYs, len(seg))
			for i, pt := range seg {
				xys[i] = plotter.XY{X: pt.x, Y: pt.est.Mid}
			}
			if len(seg) > 1 {
				line, err := plotter.NewLine(xys)
				if err != nil {
					return nil, err
				}
				line.LineStyle = style.line()
				lines = append(lines, line)
			}
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = style.marker()
			markers = append(markers, sc)
			for _, pt := range seg {
				if pt.ringed {
					ring, err := plotter.NewScatter(plotter.XYs{{X: pt.x, Y: pt.est.Mid}})
					if err != nil {
						return nil, err
					}
					ring.GlyphStyle = draw.GlyphStyle{Color: color.Gray{Y: 90}, Radius: vg.Points(7), Shape: draw.RingGlyph{}}
					markers = append(markers, ring)
				}
			}
		}
	}
	p.Add(bands...)
	p.Add(lines...)
	p.Add(markers...)
	return tooWide, nil
}

// segments splits a row's points at its gaps: a line never bridges a cell the row could not run.
func segments(points []linePoint) [][]linePoint {
	var segs [][]linePoint
	var cur []linePoint
	for _, pt := range points {
		if !pt.ok {
			if len(cur) > 0 {
				segs = append(segs, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, pt)
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

// band is a segment's 95 % interval as a translucent polygon, or nil when no point of it has
// two runs (one run has no interval to show). A lone point gets a short wide bar instead. An
// interval reaching below a log axis is cut at its floor.
func band(seg []linePoint, style rowStyle, floor float64) (plot.Plotter, error) {
	wide := false
	for _, pt := range seg {
		wide = wide || pt.est.N >= 2
	}
	if !wide {
		return nil, nil
	}
	lo := func(pt linePoint) float64 { return max(pt.est.Lo, floor) }
	if len(seg) == 1 {
		pt := seg[0]
		bar, err := plotter.NewLine(plotter.XYs{{X: pt.x, Y: lo(pt)}, {X: pt.x, Y: pt.est.Hi}})
		if err != nil {
			return nil, err
		}
		bar.LineStyle = draw.LineStyle{Color: style.band(), Width: vg.Points(9)}
		return bar, nil
	}
	var xys plotter.XYs
	for _, pt := range seg {
		xys = append(xys, plotter.XY{X: pt.x, Y: pt.est.Hi})
	}
	for i := len(seg) - 1; i >= 0; i-- {
		xys = append(xys, plotter.XY{X: seg[i].x, Y: lo(seg[i])})
	}
	poly, err := plotter.NewPolygon(xys)
	if err != nil {
		return nil, err
	}
	poly.Color = style.band()
	poly.LineStyle.Width = 0
	return poly, nil
}
