package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"echobench/report"
)

// Plots draws the comparison as PNG figures in dir and returns the paths it wrote:
//
//   - throughput.png: msgs/s per row in the first cell, ranked, with the baseline marked;
//   - latency.png: the latency percentile spectrum of every row in the first cell;
//   - reconnect.png: new connections/s per row in the second cell, ranked;
//   - cost.png: the server's CPU and peak RSS per row, in every cell.
//
// Every title carries the conditions the figures were measured under, read from the JSON
// reports themselves, so a figure copied away from its directory still says what it shows.
// A row that could not run a cell is drawn as an empty bar labelled n/a, never left out.
func Plots(dir string, results []*Result, cells []Cell) ([]string, error) {
	if len(cells) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots directory: %w", err)
	}
	reports := loadReports(results)
	var written []string
	save := func(name string, draw func(path string) error) error {
		path := filepath.Join(dir, name)
		if err := draw(path); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		written = append(written, path)
		return nil
	}

	first := cells[0]
	if err := save("throughput.png", func(path string) error {
		return rankedBars(path, "echoed messages per second, "+first.Name+" (bars are means over runs)",
			"msgs/s", conditions(first, results, reports), cellResults(results, first),
			func(s report.Summary) float64 { return s.MsgsPerSec })
	}); err != nil {
		return written, err
	}
	if err := save("latency.png", func(path string) error {
		return latencySpectrum(path, first, conditions(first, results, reports), cellResults(results, first), reports)
	}); err != nil {
		return written, err
	}
	if len(cells) > 1 {
		second := cells[1]
		if err := save("reconnect.png", func(path string) error {
			return rankedBars(path, "new connections per second, "+second.Name+" (bars are means over runs)",
				"connections/s", conditions(second, results, reports), cellResults(results, second),
				func(s report.Summary) float64 { return s.NewConnsPerSec })
		}); err != nil {
			return written, err
		}
	}
	if err := save("cost.png", func(path string) error {
		return serverCost(path, results, cells, reports)
	}); err != nil {
		return written, err
	}
	return written, nil
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

// conditions is the caption of a cell's figures: the load, the window, and where it ran. It is
// read from the reports; if they disagree (one row unpinned, say), the caption says so rather
// than showing the first row's conditions as everyone's.
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
	s, e := rep.Settings, rep.Env
	sizes := make([]string, len(s.Sizes))
	for i, n := range s.Sizes {
		sizes[i] = fmt.Sprintf("%d B", n)
	}
	load := fmt.Sprintf("%d conns × %s", s.Conns, strings.Join(sizes, "/"))
	if s.Rate > 0 {
		load += fmt.Sprintf(", open loop at %d msgs/s", s.Rate)
	} else {
		load += ", closed loop"
	}
	if s.Pipeline > 1 {
		load += fmt.Sprintf(", pipeline %d", s.Pipeline)
	}
	if s.Reconnect > 0 {
		load += fmt.Sprintf(", reconnect after %d echo(es)", s.Reconnect)
	}
	window := fmt.Sprintf("%s warmup + %s measured", seconds(s.WarmupS), seconds(s.DurationS))
	pinning := "unpinned"
	if e.Pinning.Enabled {
		pinning = fmt.Sprintf("server on CPU %s, echobench on CPU %s", e.Pinning.ServerCPUs, e.Pinning.ClientCPUs)
	} else if e.Pinning.Reason != "" {
		pinning = "unpinned (" + e.Pinning.Reason + ")"
	}
	commit := e.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return fmt.Sprintf("%s, %s\n%s; GOMAXPROCS %d; %d× %s; kernel %s; %s; commit %s",
		load, window, pinning, e.GOMAXPROCS, e.Cores, e.CPUModel, e.Kernel, e.GoVersion, commit)
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// bar is one row of a ranked bar chart.
type bar struct {
	name  string
	value float64
	na    string // why the row has no value; empty if it has one
	note  string // what the reader must know about the value: a floor, wrong bytes
}

// naLabelLen bounds the n/a reason printed beside an empty bar, so one long error message
// cannot push the chart off the figure; the full reason is in the table's notes.
const naLabelLen = 70

// rankedBars draws one horizontal bar per row, the highest at the top, with the baseline's
// value as a dashed vertical line and each bar labelled with its value and ratio to it.
func rankedBars(path, title, unit, caption string, results []*Result, metric func(report.Summary) float64) error {
	var bars []bar
	baseline := 0.0
	for _, r := range results {
		b := bar{name: r.Row.Name, value: r.Mean(metric)}
		if len(r.Runs) == 0 {
			b.na = r.NA
			if b.na == "" {
				b.na = "no run"
			}
		}
		for _, s := range r.Runs {
			if s.VerifyFailures > 0 {
				b.note = "  VERIFY FAILURES"
			}
			if s.ClientSaturated && metric(s) > 0 {
				b.note += "  (a floor: echobench saturated)"
				break
			}
		}
		if r.Row.Name == Baseline && b.na == "" {
			baseline = b.value
		}
		bars = append(bars, b)
	}
	// Lowest first: a horizontal bar chart draws index 0 at the bottom.
	sort.SliceStable(bars, func(i, j int) bool { return bars[i].value < bars[j].value })

	p := plot.New()
	p.Title.Text = title + "\n" + caption
	p.X.Label.Text = unit
	p.X.Min = 0
	values := make(plotter.Values, len(bars))
	names := make([]string, len(bars))
	labels := plotter.XYLabels{XYs: make(plotter.XYs, len(bars)), Labels: make([]string, len(bars))}
	top := 0.0
	for i, b := range bars {
		values[i] = b.value
		names[i] = b.name
		top = max(top, b.value)
		labels.XYs[i] = plotter.XY{X: b.value, Y: float64(i)}
		switch {
		case b.na != "":
			names[i] += " (n/a)"
			labels.Labels[i] = "n/a: " + truncate(b.na, naLabelLen)
		case baseline > 0:
			labels.Labels[i] = fmt.Sprintf("%s  ×%.2f%s", si(b.value), b.value/baseline, b.note)
		default:
			labels.Labels[i] = si(b.value) + b.note
		}
	}
	if len(bars) == 0 {
		return fmt.Errorf("no rows to draw")
	}
	grid := plotter.NewGrid()
	grid.Horizontal.Color = nil // the bars themselves mark the rows
	p.Add(grid)
	chart, err := plotter.NewBarChart(values, vg.Points(16))
	if err != nil {
		return err
	}
	chart.Horizontal = true
	chart.Color = plotutil.Color(1)
	chart.LineStyle.Width = 0
	p.Add(chart)
	valueLabels, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range valueLabels.TextStyle {
		valueLabels.TextStyle[i].YAlign = draw.YCenter
	}
	valueLabels.Offset = vg.Point{X: vg.Points(4)}
	p.Add(valueLabels)
	if baseline > 0 {
		line, err := plotter.NewLine(plotter.XYs{{X: baseline, Y: -0.5}, {X: baseline, Y: float64(len(bars)) - 0.5}})
		if err != nil {
			return err
		}
		line.Color = color.RGBA{R: 200, A: 255}
		line.Width = vg.Points(1.5)
		line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(Baseline+" baseline", line)
		p.Legend.XOffs = -vg.Points(8) // keep the legend's line sample off the figure's edge
	}
	// Room to the right of the longest bar for its label.
	p.X.Max = max(top, baseline) * 1.45
	p.NominalY(names...)
	return p.Save(10*vg.Inch, barFigureHeight(len(bars), caption), path)
}

// barFigureHeight leaves each row enough height for its label, plus the title and axis.
func barFigureHeight(rows int, caption string) vg.Length {
	return vg.Length(1.5+0.2*float64(strings.Count(caption, "\n")+1))*vg.Inch + vg.Length(rows)*0.45*vg.Inch
}

// latencySpectrum draws every row's per-message latency against percentile, on HdrHistogram's
// usual axis: x = 1/(1-p), so 90%, 99%, 99.9%... sit at equal steps and the tail gets the room
// it deserves. With several runs, each run is its own line in the row's colour.
func latencySpectrum(path string, cell Cell, caption string, results []*Result, reports map[string]*report.Report) error {
	p := plot.New()
	p.Title.Text = "latency by percentile, " + cell.Name + "\n" + caption
	p.X.Label.Text = "percentile (the 100% maximum lies off this scale)"
	p.Y.Label.Text = "latency per message, µs"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.TickerFunc(percentileTicks)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	grid := plotter.NewGrid()
	p.Add(grid)
	drawn := 0
	lowest, highest := math.Inf(1), 0.0
	for i, r := range results {
		named := false
		for _, f := range r.Files {
			rep := reports[f]
			if rep == nil {
				continue
			}
			for _, run := range rep.Runs {
				points := spectrumPoints(run.Latency.Spectrum)
				if len(points) < 2 {
					continue
				}
				line, err := plotter.NewLine(points)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				line.Color = plotutil.Color(i)
				line.Dashes = plotutil.Dashes(i)
				line.Width = vg.Points(1.5)
				p.Add(line)
				drawn++
				for _, pt := range points {
					lowest, highest = min(lowest, pt.Y), max(highest, pt.Y)
				}
				if !named {
					p.Legend.Add(r.Row.Name, line)
					named = true
				}
			}
		}
		if !named {
			// A row with no spectrum still appears in the legend, so its absence is visible.
			p.Legend.Add(r.Row.Name + " (n/a)")
		}
	}
	if drawn == 0 {
		// A log axis cannot span an empty range; show an empty decade grid instead.
		p.Title.Text += "\nNO LATENCY SPECTRUM IN THE REPORTS"
		p.X.Min, p.X.Max = 1, 1e4
		p.Y.Min, p.Y.Max = 1, 1e6
	} else {
		// Whole decades, so both ends of the axis carry a label; one more decade on top leaves
		// the legend room above the lines.
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lowest)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(highest))+1)
	}
	return p.Save(10*vg.Inch, 6*vg.Inch, path)
}

// spectrumPoints maps a spectrum onto the 1/(1-p) axis. The 100% point is infinitely far out
// and a 0 µs value has no place on a log axis, so both are left out.
func spectrumPoints(spectrum []report.Percentile) plotter.XYs {
	var xys plotter.XYs
	for _, pt := range spectrum {
		if pt.Percentile >= 100 || pt.ValueUs <= 0 {
			continue
		}
		xys = append(xys, plotter.XY{X: 1 / (1 - pt.Percentile/100), Y: float64(pt.ValueUs)})
	}
	return xys
}

// percentileTicks labels the decades of the 1/(1-p) axis with their percentiles: 1 is 0%, 10 is
// 90%, 100 is 99%, 1000 is 99.9%, and so on.
func percentileTicks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for nines, x := 0, 1.0; x <= max*1.0001; nines, x = nines+1, x*10 {
		if x < min/1.0001 {
			continue
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: percentileLabel(nines)})
		for k := 2.0; k < 10 && x*k <= max; k++ {
			ticks = append(ticks, plot.Tick{Value: x * k}) // unlabelled minor ticks
		}
	}
	return ticks
}

func percentileLabel(nines int) string {
	switch nines {
	case 0:
		return "0%"
	case 1:
		return "90%"
	case 2:
		return "99%"
	default:
		return "99." + strings.Repeat("9", nines-2) + "%"
	}
}

// serverCost draws what each row's server cost, CPU and peak RSS side by side, one bar per cell,
// rows in the order of the first cell's ranking as in the table.
func serverCost(path string, results []*Result, cells []Cell, reports map[string]*report.Report) error {
	first := cellResults(results, cells[0])
	sort.SliceStable(first, func(i, j int) bool {
		return first[i].Mean(msgsPerSec) < first[j].Mean(msgsPerSec)
	})
	var rows []string
	for _, r := range first {
		rows = append(rows, r.Row.Name)
	}
	if len(rows) == 0 {
		return fmt.Errorf("no rows to draw")
	}
	cpu, err := groupedBars("server CPU, % of the measured window (100 = one core)", rows, results, cells,
		func(s report.Summary) float64 { return s.ServerCPUPct })
	if err != nil {
		return err
	}
	rss, err := groupedBars("server peak RSS, MiB (whole process tree)", rows, results, cells,
		func(s report.Summary) float64 { return float64(s.ServerPeakRSSBytes) / (1 << 20) })
	if err != nil {
		return err
	}

	var captions []string
	for _, c := range cells {
		captions = append(captions, conditions(c, results, reports))
	}
	caption := "server cost per model (bars are means over runs; an empty bar is n/a)\n" + strings.Join(captions, "\n")
	style := cpu.Title.TextStyle
	style.YAlign = draw.YTop
	captionHeight := style.Height(caption) + vg.Points(12)

	height := captionHeight + 1.2*vg.Inch + vg.Length(len(rows))*vg.Length(len(cells))*0.3*vg.Inch
	img := vgimg.New(12*vg.Inch, height)
	canvas := draw.New(img)
	canvas.FillText(style, vg.Point{X: canvas.Center().X, Y: canvas.Max.Y - vg.Points(6)}, caption)
	panels := draw.Crop(canvas, 0, 0, 0, -captionHeight)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(24), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadBottom: vg.Points(6)}
	aligned := plot.Align([][]*plot.Plot{{cpu, rss}}, tiles, panels)
	cpu.Draw(aligned[0][0])
	rss.Draw(aligned[0][1])

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func msgsPerSec(s report.Summary) float64 { return s.MsgsPerSec }

// groupedBars is one panel of horizontal bars: a group per row, a bar per cell.
func groupedBars(title string, rows []string, results []*Result, cells []Cell, metric func(report.Summary) float64) (*plot.Plot, error) {
	byRowCell := map[[2]string]*Result{}
	for _, r := range results {
		byRowCell[[2]string{r.Row.Name, r.Cell}] = r
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Min = 0
	p.Legend.Top = true
	grid := plotter.NewGrid()
	grid.Horizontal.Color = nil
	p.Add(grid)
	const barWidth = 12
	top := 0.0
	for i, c := range cells {
		values := make(plotter.Values, len(rows))
		for j, row := range rows {
			if r := byRowCell[[2]string{row, c.Name}]; r != nil {
				values[j] = r.Mean(metric)
				top = max(top, values[j])
			}
		}
		chart, err := plotter.NewBarChart(values, vg.Points(barWidth))
		if err != nil {
			return nil, err
		}
		chart.Horizontal = true
		chart.Color = plotutil.Color(i + 1)
		chart.LineStyle.Width = 0
		// Cells stack from the top of each group down, in the legend's order.
		chart.Offset = vg.Points(barWidth * (float64(len(cells)-1)/2 - float64(i)))
		p.Add(chart)
		p.Legend.Add(c.Name, chart)
	}
	p.NominalY(rows...)
	// Empty room above the top group for the legend, and past the longest bar.
	p.Y.Max = float64(len(rows)) + 0.3
	p.X.Max = top * 1.1
	return p, nil
}

// si writes a rate with a k or M suffix, three significant digits.
func si(v float64) string {
	switch {
	case math.Abs(v) >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case math.Abs(v) >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
