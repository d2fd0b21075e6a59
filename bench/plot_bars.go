package bench

import (
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// hbar is one row's bar in a ranked panel.
type hbar struct {
	row   string
	est   Estimate
	ok    bool
	label string // beside the bar: the value and its ratio to the baseline, or "n/a: why"
}

// barPanel is one panel of a ranked bar figure: a statistic per row at one cell.
type barPanel struct {
	title, xLabel string
	value         func(row string) (Estimate, string) // the row's value, or why it has none
	label         func(e Estimate) string             // the value's label beside its bar
	ratio         bool                                // label each bar with its ratio to the baseline
}

// barFigure is panels of horizontal bars side by side, one bar per row in the row's colour,
// ranked by the first panel (highest on top) and in that same order in every panel, so a row is
// read across at one height.
type barFigure struct {
	base, title, howToRead string
	cells                  []Cell // for the caption
	panels                 []barPanel
	gaps, notes            []string
}

var barLabelStyle = textStyle(10, draw.XLeft, draw.YCenter)

// naLabelLen bounds the n/a reason printed beside an empty bar, so one long error message cannot
// push the chart off the figure; the full reason is in the figure's gaps in index.md.
const naLabelLen = 60

func (f barFigure) draw(d *plotData, dir string) (*Figure, error) {
	values := make([]map[string]hbar, len(f.panels))
	gaps := append([]string(nil), f.gaps...)
	for i, pn := range f.panels {
		values[i] = map[string]hbar{}
		for _, row := range d.rows {
			est, why := pn.value(row)
			b := hbar{row: row, est: est, ok: why == ""}
			if !b.ok {
				b.label = "n/a: " + truncate(why, naLabelLen)
				gaps = append(gaps, fmt.Sprintf("%s: %s: %s", pn.title, row, why))
			}
			values[i][row] = b
		}
	}
	order := append([]string(nil), d.rows...)
	rank := func(row string) float64 {
		if b := values[0][row]; b.ok {
			return b.est.Mid
		}
		return math.Inf(-1)
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i]) > rank(order[j]) })

	var panels []*plot.Plot
	for i, pn := range f.panels {
		bars := &hbars{palette: d.palette}
		base, hasBase := values[i][Baseline]
		for _, row := range order {
			b := values[i][row]
			if b.ok {
				b.label = pn.label(b.est)
				if pn.ratio && hasBase && base.ok && base.est.Mid > 0 {
					b.label += fmt.Sprintf("  ×%.2f", b.est.Mid/base.est.Mid)
				}
			}
			bars.bars = append(bars.bars, b)
		}
		p := newPanel(pn.title, pn.xLabel)
		p.X.Tick.Marker = siTicks
		if ref, ok := values[i][CRefName]; ok && ref.ok {
			p.Add(floorLine{x: ref.est.Mid, style: d.palette.of(CRefName)}) // behind the bars
		}
		p.Add(bars)
		names := make([]string, len(order))
		for k, row := range order {
			names[len(order)-1-k] = row // y = 0 is the bottom bar
		}
		if len(names) > 0 {
			p.NominalY(names...)
		}
		if i > 0 { // the first panel names the rows for all
			p.Y.Tick.Marker = plot.ConstantTicks{}
		}
		// Room right of the longest bar for its label.
		p.X.Min, p.X.Max = 0, max(bars.top(), 1)*1.6
		if !bars.any() {
			noData(p, "(no row has a value here: see the gaps)")
		}
		panels = append(panels, p)
	}
	height := vg.Length(len(order))*0.36*vg.Inch + 1.1*vg.Inch
	caption := d.sweepCaption(f.cells, "bar: their mean, whisker: its 95 % interval")
	l := layout{title: f.title, caption: caption, panels: panels,
		width: 6*vg.Inch*vg.Length(len(panels)) + 1.2*vg.Inch, height: height}
	png, svg, err := l.save(dir, f.base)
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", f.base, err)
	}
	return &Figure{File: png, SVG: svg, Title: f.title, HowToRead: f.howToRead, Gaps: gaps, Notes: f.notes}, nil
}

// hbars draws ranked horizontal bars, each in its row's colour, with the 95 % interval as a
// whisker where a bar has two runs or more, and its label to the right.
type hbars struct {
	bars    []hbar // the first is drawn at the top
	palette palette
}

// top is the longest bar, or its whisker if that reaches at most a third further: a wider
// interval (two runs give wide ones) is cut at the panel's edge rather than shrinking every bar.
func (h *hbars) top() float64 {
	top := 0.0
	for _, b := range h.bars {
		if b.ok {
			top = max(top, b.est.Mid)
		}
	}
	limit := top * 4 / 3
	for _, b := range h.bars {
		if b.ok && b.est.N >= 2 {
			top = max(top, min(b.est.Hi, limit))
		}
	}
	return top
}

func (h *hbars) any() bool {
	for _, b := range h.bars {
		if b.ok {
			return true
		}
	}
	return false
}

// Plot implements plot.Plotter.
func (h *hbars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	half := vg.Points(8)
	for i, b := range h.bars {
		y := trY(float64(len(h.bars) - 1 - i))
		end := trX(0)
		if b.ok && b.est.Mid > 0 {
			fill := h.palette.of(b.row).color
			x0, x1 := trX(0), trX(b.est.Mid)
			c.FillPolygon(fill, []vg.Point{{X: x0, Y: y - half}, {X: x1, Y: y - half},
				{X: x1, Y: y + half}, {X: x0, Y: y + half}})
			end = x1
			if b.est.N >= 2 {
				// Dark grey, but white where it crosses a dark bar (the black C-ref), so the whisker
				// shows on the bar and beside it alike.
				outside := draw.LineStyle{Color: color.Gray{Y: 40}, Width: vg.Points(1.2)}
				inside := outside
				if luminance(fill) < 0.35 {
					inside.Color = color.White
				}
				at := func(x vg.Length) draw.LineStyle {
					if x <= x1 {
						return inside
					}
					return outside
				}
				lo, hi := trX(max(b.est.Lo, 0)), trX(b.est.Hi)
				cut := hi > c.Max.X // an interval wider than the panel runs off its edge, without a cap
				hi = min(hi, c.Max.X)
				c.StrokeLine2(inside, lo, y, min(hi, x1), y)
				if hi > x1 {
					c.StrokeLine2(outside, max(lo, x1), y, hi, y)
				}
				c.StrokeLine2(at(lo), lo, y-half/2, lo, y+half/2)
				if !cut {
					c.StrokeLine2(at(hi), hi, y-half/2, hi, y+half/2)
					end = max(end, hi)
				}
			}
		}
		// On a white ground, so that the reference line or a long whisker does not strike it through.
		at := vg.Point{X: min(end+vg.Points(5), c.Max.X-barLabelStyle.Width(b.label)), Y: y}
		box := barLabelStyle.Rectangle(b.label).Add(at)
		c.FillPolygon(color.White, []vg.Point{{X: box.Min.X - 1, Y: box.Min.Y}, {X: box.Max.X + 1, Y: box.Min.Y},
			{X: box.Max.X + 1, Y: box.Max.Y}, {X: box.Min.X - 1, Y: box.Max.Y}})
		c.FillText(barLabelStyle, at, b.label)
	}
}

// luminance is a colour's relative brightness, 0 black to 1 white.
func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(b)) / 0xffff
}

// DataRange implements plot.DataRanger.
func (h *hbars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return 0, h.top(), -0.5, float64(len(h.bars)) - 0.5
}

// floorLine is the reference row's value as a vertical line across a bar panel: the floor the
// models are read against.
type floorLine struct {
	x     float64
	style rowStyle
}

// Plot implements plot.Plotter.
func (f floorLine) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, _ := plt.Transforms(&c)
	line := f.style.line()
	line.Width = vg.Points(1.2)
	c.StrokeLine2(line, trX(f.x), c.Min.Y, trX(f.x), c.Max.Y)
}
