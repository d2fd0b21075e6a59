package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// layout is one figure: a title and the conditions above, one or more panels side by side, and
// the legend to their right, outside the data, so that ten lines are never hidden behind it.
type layout struct {
	title   string
	caption string
	panels  []*plot.Plot
	yLabels []string // each panel's y-axis label
	legend  *legend  // nil for bar charts, whose rows are named on the axis
	width   vg.Length
	height  vg.Length // of the panels; the header is added to it
}

var (
	titleStyle   = textStyle(15, draw.XCenter, draw.YTop)
	captionStyle = textStyle(10, draw.XCenter, draw.YTop)
	yLabelStyle  = rotated(textStyle(12, draw.XCenter, draw.YBottom))
)

func textStyle(size font.Length, x draw.XAlignment, y draw.YAlignment) text.Style {
	return text.Style{Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler, XAlign: x, YAlign: y}
}

func rotated(s text.Style) text.Style {
	s.Rotation = math.Pi / 2
	return s
}

// pngDPI is the PNG's resolution: 110 dots per inch makes a 10-inch figure about 1,100 pixels
// wide, sharp on a laptop screen and in a GitHub page. Tests that only check a figure is drawn
// lower it, since rasterising is most of their time under -race.
var pngDPI = 110

const headerPad = vg.Length(8) // points around the title and the caption

func (l layout) headerHeight() vg.Length {
	return titleStyle.Height(l.title) + captionStyle.Height(l.caption) + 3*headerPad
}

func (l layout) headerWidth() vg.Length {
	w := titleStyle.Width(l.title)
	for _, line := range strings.Split(l.caption, "\n") {
		w = max(w, captionStyle.Width(line))
	}
	return w
}

// draw lays the figure out on c.
func (l layout) draw(c draw.Canvas) {
	// An opaque background: an SVG viewed on a dark page must not lose its black text.
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	top := c.Max.Y - headerPad
	c.FillText(titleStyle, vg.Point{X: c.Center().X, Y: top}, l.title)
	top -= titleStyle.Height(l.title) + headerPad
	c.FillText(captionStyle, vg.Point{X: c.Center().X, Y: top}, l.caption)
	body := draw.Crop(c, 0, 0, 0, -l.headerHeight())
	if l.legend != nil {
		w := l.legend.width()
		legendArea := draw.Crop(body, body.Size().X-w-vg.Points(10), 0, vg.Points(30), -vg.Points(10))
		l.legend.Draw(legendArea)
		body = draw.Crop(body, 0, -w-vg.Points(16), 0, 0)
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(l.panels), PadX: vg.Points(28), PadLeft: vg.Points(6),
		PadRight: vg.Points(6), PadBottom: vg.Points(6), PadTop: vg.Points(2)}
	// Plain tiles: the panels share their title and x axis, so their data areas line up without
	// plot.Align.
	for i, p := range l.panels {
		tile := tiles.At(body, i, 0)
		if i < len(l.yLabels) && l.yLabels[i] != "" {
			// The y label is drawn here rather than by gonum, which reserves room for it as if
			// it were centred on the arithmetic middle of the axis: on a log axis that is near
			// the top, and the panel lost a fifth of its height to empty space.
			x := tile.Min.X + yLabelStyle.Height(l.yLabels[i])
			tile.FillText(yLabelStyle, vg.Point{X: x, Y: tile.Center().Y}, l.yLabels[i])
			tile = draw.Crop(tile, yLabelStyle.Height(l.yLabels[i])+vg.Points(4), 0, 0, 0)
		}
		p.Draw(tile)
	}
}

// legend is a line figure's legend column. It keeps its entries' names, which plot.Legend
// keeps to itself, to size the column.
type legend struct {
	plot.Legend
	names []string
}

func (l *legend) width() vg.Length {
	w := vg.Length(0)
	for _, name := range l.names {
		w = max(w, l.TextStyle.Width(" "+name))
	}
	return w + l.ThumbnailWidth + vg.Points(6)
}

// save writes the figure as dir/base.png and dir/base.svg and returns their names.
func (l layout) save(dir, base string) (png, svg string, err error) {
	// Wide enough for the header, however few the panels: a caption cut at both edges loses
	// the conditions it is there to state.
	l.width = max(l.width, l.headerWidth()+vg.Inch/2)
	height := l.height + l.headerHeight()
	png, svg = base+".png", base+".svg"
	img := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(l.width, height), vgimg.UseDPI(pngDPI))}
	l.draw(draw.New(img))
	if err := writeFile(filepath.Join(dir, png), img); err != nil {
		return "", "", err
	}
	vec := vgsvg.New(l.width, height)
	l.draw(draw.New(vec))
	if err := writeFile(filepath.Join(dir, svg), vec); err != nil {
		return "", "", err
	}
	return png, svg, nil
}

func writeFile(path string, w io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// newPanel is a plot with the axes and grid every panel shares; its y label is the layout's.
func newPanel(title, xLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.X.Label.Text = xLabel
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 225}
	grid.Horizontal.Color = color.Gray{Y: 225}
	p.Add(grid)
	return p
}

func newLegend() *legend {
	l := &legend{Legend: plot.NewLegend()}
	l.Top, l.Left = true, true
	l.TextStyle.Font.Size = 11
	l.ThumbnailWidth = vg.Points(28)
	l.Padding = vg.Points(3)
	return l
}

// add adds a row's entry with its line and marker, or marks it n/a.
func (l *legend) add(name string, s rowStyle, drawn bool) {
	if !drawn {
		name += " (n/a)"
		l.Add(name)
	} else {
		l.Add(name, thumb{s})
	}
	l.names = append(l.names, name)
}

// thumb draws a row's line and marker in the legend.
type thumb struct{ style rowStyle }

func (t thumb) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(t.style.line(), c.Min.X, y, c.Max.X, y)
	c.DrawGlyphNoClip(t.style.marker(), c.Center())
}

// dataTicks labels exactly the swept values: the axis then reads as the matrix does (1, 10,
// 100, 1k connections; 64 B, 1 KiB) rather than at round numbers no cell was run at.
func dataTicks(xs []float64, label func(float64) string) plot.Ticker {
	ticks := make(plot.ConstantTicks, 0, len(xs))
	for _, x := range xs {
		ticks = append(ticks, plot.Tick{Value: x, Label: label(x)})
	}
	return ticks
}

// siTicks are linear ticks at a round step giving four to eight labels (gonum's own give two or
// three on a short axis), with k and M labels, so 150000 reads as 150k.
var siTicks = plot.TickerFunc(func(min, max float64) []plot.Tick {
	if !(max > min) {
		return []plot.Tick{{Value: min, Label: fmtCount(min)}}
	}
	step := math.Pow(10, math.Floor(math.Log10((max-min)/4)))
	for _, k := range []float64{1, 2, 2.5, 5, 10} {
		if (max-min)/(step*k) <= 8 {
			step *= k
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmtCount(v)})
		if mid := v + step/2; mid <= max {
			ticks = append(ticks, plot.Tick{Value: mid}) // an unlabelled minor tick
		}
	}
	return ticks
})

// logTicks labels each decade, and 2 and 5 within it when the axis spans less than three decades,
// and every step when it spans less than one, so that a narrow axis still has labels; minor
// ticks fall in between.
var logTicks = logTicksLabelled(fmtCount)

// logTicksLabelled is logTicks with its own labels (durations for latency axes).
func logTicksLabelled(label func(float64) string) plot.Ticker {
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		return decadeTicks(min, max, label)
	})
}

func decadeTicks(min, max float64, label func(float64) string) []plot.Tick {
	var ticks []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(min))); d <= max*1.0001; d *= 10 {
		for k := 1.0; k < 10; k++ {
			v := d * k
			if v < min/1.0001 || v > max*1.0001 {
				continue
			}
			t := plot.Tick{Value: v}
			if k == 1 || max/min < 1000 && (k == 2 || k == 5) || max/min < 10 {
				t.Label = label(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// logRange is the axis range of positive values on a log scale, with room for the markers. With
// no positive value it is an empty decade, since a log axis cannot span an empty range.
func logRange(lo, hi float64) (float64, float64) {
	if !(lo > 0) || !(hi >= lo) || math.IsInf(hi, 0) {
		return 1, 10
	}
	return lo / 1.4, hi * 1.4
}

// noData writes across an empty panel what is missing, so it does not read as "all zero".
func noData(p *plot.Plot, why string) {
	p.Title.Text += "\n" + why
}
