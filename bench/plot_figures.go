package bench

import (
	"fmt"
	"math"
	"strings"
	"time"

	"echobench/report"
)

// The figures, in the order Plots draws them. Each returns nil when the matrix has no cell for it.

func msgsPerSec(s report.Summary) float64 { return s.MsgsPerSec }

// cpuPerMessage is the server's CPU per echoed message in µs: its share of a core over the
// window divided by the rate. Over loopback the server and echobench share the kernel's work,
// so when both saturate this, not msgs/s, is what tells servers apart.
func cpuPerMessage(s report.Summary) float64 { return s.ServerCPUPct / 100 * 1e6 / s.MsgsPerSec }

func cpuPerConnection(s report.Summary) float64 {
	return s.ServerCPUPct / 100 * 1e6 / s.NewConnsPerSec
}

const noCPU = "no server CPU accounting in the report"

func headlineFigure(d *plotData, dir string) (*Figure, error) {
	c := d.headline()
	return barFigure{
		base:  "headline",
		title: "The headline cell, " + c.Name + ": throughput and what it cost the server",
		howToRead: "Rows are ranked by throughput; read across to the server's CPU per message, the steadier " +
			"comparison when the server and echobench saturate their cores together" + d.floorClause() +
			"; a whisker is the 95 % interval of repeated runs.",
		cells: []Cell{c},
		panels: []barPanel{
			{title: "echoed messages per second", xLabel: "msgs/s", ratio: true,
				value: d.barValue(c, msgsPerSec, "no messages echoed"),
				label: func(e Estimate) string { return fmtCount(e.Mid) }},
			{title: "server CPU per message (lower is better)", xLabel: "µs per message", ratio: true,
				value: d.barValue(c, cpuPerMessage, noCPU),
				label: func(e Estimate) string { return fmt.Sprintf("%.1f µs", e.Mid) }},
		},
		notes: d.pointNotes([]Cell{c}, true),
	}.draw(d, dir)
}

// floorClause points the reader at the C reference's dashed line, where the run has one.
func (d *plotData) floorClause() string {
	if !contains(d.rows, CRefName) {
		return ""
	}
	return ", and against the dashed line of the C reference server (" + CRefName + "), the floor a model can approach"
}

// barValue is a bar panel's value for the rows at one cell.
func (d *plotData) barValue(c Cell, metric func(report.Summary) float64,
	lacking string) func(string) (Estimate, string) {
	return func(row string) (Estimate, string) {
		r := d.result(row, c)
		if r == nil || len(r.Runs) == 0 {
			return Estimate{}, missing(r, "")
		}
		pt, why := estimatePoint(r, c, metric, true, lacking)
		return pt.est, why
	}
}

// pointNotes name the points that need a word beside them: where throughput is a limit of the
// meter rather than of the server alone (when the figure shows throughput), where the server
// served only some of the connections, and where it echoed wrong bytes.
func (d *plotData) pointNotes(cells []Cell, throughput bool) []string {
	var both, client, verify, unserved []string
	for _, c := range cells {
		for _, row := range d.rows {
			r := d.result(row, c)
			if r == nil || len(r.Runs) == 0 {
				continue
			}
			at := row + " at " + c.Name
			var b, cl, v bool
			for _, s := range r.Runs {
				b, cl, v = b || s.BothSaturated, cl || s.ClientSaturated && !s.BothSaturated, v || s.VerifyFailuresTotal > 0
			}
			switch {
			case b:
				both = append(both, at)
			case cl:
				client = append(client, at)
			}
			if v {
				verify = append(verify, at)
			}
			// The fewest served of any run: a pool's backlog, or connections the server closed.
			s := r.Runs[0]
			for _, o := range r.Runs[1:] {
				if o.ConnsEchoed < s.ConnsEchoed {
					s = o
				}
			}
			if c.Sweep != SweepReconnect && s.ConnsEchoed < s.ConnsEstablished {
				unserved = append(unserved, fmt.Sprintf("%s (%d of %d)", at, s.ConnsEchoed, s.ConnsEstablished))
			}
		}
	}
	var notes []string
	if !throughput {
		both, client = nil, nil
	}
	if len(both) > 0 {
		notes = append(notes, "the server and echobench both saturated their cores, so msgs/s is the pair's "+
			"limit (compare CPU per message): "+strings.Join(both, ", "))
	}
	if len(client) > 0 {
		notes = append(notes, "echobench saturated while the server did not, so msgs/s is a floor for the "+
			"server: "+strings.Join(client, ", "))
	}
	if len(unserved) > 0 {
		notes = append(notes, "served fewer connections than were established, so the point is what a few "+
			"connections got while "+
			"the rest waited in the backlog or were closed unserved: "+strings.Join(unserved, ", "))
	}
	if len(verify) > 0 {
		notes = append(notes, "VERIFY FAILURES, the server echoed wrong bytes: "+strings.Join(verify, ", "))
	}
	return notes
}

func connsLabel(x float64) string {
	if x >= 1000 {
		return fmtCount(x)
	}
	return fmt.Sprintf("%.0f", x)
}

func throughputConnsFigure(d *plotData, dir string) (*Figure, error) {
	cells := d.sweep(SweepConns)
	if len(cells) == 0 {
		return nil, nil
	}
	return lineFigure{
		base:  "throughput-conns",
		title: "Throughput as connections grow (64 B ping-pong)",
		howToRead: "Look for where each line stops rising or turns down: that is where the model stops " +
			"scaling with connections, and a line that ends early is a model that could not run the next count " +
			"(the gaps below say why).",
		xLabel: "connections (log scale)", logX: true, xTick: connsLabel,
		panels: []linePanel{{title: "echoed messages per second", yLabel: "msgs/s", cells: cells,
			value: func(r *Result, c Cell) (linePoint, string) {
				return estimatePoint(r, c, msgsPerSec, true, "no messages echoed")
			}}},
		notes: d.pointNotes(cells, true),
	}.draw(d, dir)
}

func cpuConnsFigure(d *plotData, dir string) (*Figure, error) {
	cells := d.sweep(SweepConns)
	if len(cells) == 0 {
		return nil, nil
	}
	return lineFigure{
		base:  "cpu-conns",
		title: "Server CPU per message as connections grow",
		howToRead: "Lower is cheaper; a flat line is a model whose cost per message does not depend on how many " +
			"connections it watches, and a line that climbs is paying per connection (a scan of every fd, a " +
			"thread or process to switch to) on every message.",
		xLabel: "connections (log scale)", logX: true, xTick: connsLabel,
		panels: []linePanel{{title: "server CPU per echoed message", yLabel: "µs per message (log scale)",
			logY: true, cells: cells,
			value: func(r *Result, c Cell) (linePoint, string) {
				return estimatePoint(r, c, cpuPerMessage, true, noCPU)
			}}},
		notes: d.pointNotes(cells, false),
	}.draw(d, dir)
}

// rssBaseline is the smallest connection count of the conns sweep, if it is small enough to
// stand for "the server with (almost) no connections": each row's peak RSS there is taken off
// its peak RSS at larger counts, so what remains is what the connections cost.
const rssBaselineMaxConns = 10

// rssMinConns is the fewest connections a per-connection RSS is drawn for. Peak RSS moves by
// hundreds of KiB from run to run (the Go heap's growth steps, pages of the binary touched), so
// below about a hundred connections that noise, divided by the count, is larger than what an
// event loop's connection costs.
const rssMinConns = 100

func rssConnsFigure(d *plotData, dir string) (*Figure, error) {
	busy, idle := d.sweep(SweepConns), d.sweep(SweepIdle)
	if len(busy) == 0 && len(idle) == 0 {
		return nil, nil
	}
	var notes, bases []string
	var specs []linePanel
	for _, sw := range []struct {
		title string
		cells []Cell
	}{{"busy: 64 B ping-pong", busy}, {"mostly idle connections", idle}} {
		if len(sw.cells) == 0 {
			continue
		}
		pn, base := d.rssPanel(sw.title, sw.cells, &notes)
		if len(pn.cells) == 0 {
			continue // only baseline-sized cells: nothing per connection to draw
		}
		if base != "" {
			bases = append(bases, base)
		}
		specs = append(specs, pn)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	how := "Lower is leaner; a thread or process per connection shows as a line one or two decades above the " +
		"event loops"
	if len(specs) == 2 {
		how += ", and the gap between a model's busy (left) and idle (right) line is memory it spends only on " +
			"active connections"
	}
	how += "."
	if len(bases) > 0 {
		how += fmt.Sprintf(" Each row's peak RSS at %s is subtracted first, so a point is what one more connection "+
			"costs (counts below %d are left out: there RSS's own noise is larger than the connections).",
			strings.Join(bases, " and "), rssMinConns)
	}
	f, err := lineFigure{
		base:   "rss-conns",
		title:  "Server memory per connection (peak RSS over the process tree)",
		xLabel: "connections (log scale)", logX: true, xTick: connsLabel, sameY: true,
		howToRead: how, panels: specs,
	}.draw(d, dir)
	if f != nil {
		// notes were filled while drawing.
		f.Notes = append(append(f.Notes, notes...), d.pointNotes(append(busy, idle...), false)...)
	}
	return f, err
}

// rssPanel is one panel of the RSS figure: a sweep's cells from rssMinConns connections up, each
// row's peak RSS less its own at the sweep's smallest cell (when that is small enough to stand
// for the bare server), over the connections. It also returns the baseline cell's name.
func (d *plotData) rssPanel(title string, cells []Cell, notes *[]string) (linePanel, string) {
	var baseCell *Cell
	if cells[0].X <= rssBaselineMaxConns {
		baseCell = &cells[0]
	}
	for len(cells) > 0 && cells[0].X < rssMinConns {
		cells = cells[1:]
	}
	if baseCell == nil {
		*notes = append(*notes, fmt.Sprintf("%s: no cell at %d connections or fewer to take a baseline from, so "+
			"points are peak RSS / connections", title, rssBaselineMaxConns))
	}
	noBase := map[string]bool{}
	perConn := func(r *Result, c Cell) (linePoint, string) {
		base := d.rssBase(r.Row.Name, baseCell)
		if base == 0 && baseCell != nil && !noBase[r.Row.Name] {
			noBase[r.Row.Name] = true
			*notes = append(*notes, fmt.Sprintf("%s: %s has no RSS at %s (n/a there), so its points are peak RSS / "+
				"connections", title, r.Row.Name, baseCell.Name))
		}
		metric := func(s report.Summary) float64 { return (float64(s.ServerPeakRSSBytes) - base) / c.X }
		return estimatePoint(r, c, metric, true,
			"peak RSS not above the baseline: the connections' memory is below what /proc sampling resolves")
	}
	pn := linePanel{title: title, yLabel: "bytes per connection (log scale)", logY: true, cells: cells, value: perConn}
	if baseCell == nil {
		return pn, ""
	}
	return pn, baseCell.Name
}

// rssBase is a row's mean peak RSS at the baseline cell, or 0 if it has none.
func (d *plotData) rssBase(row string, cell *Cell) float64 {
	if cell == nil {
		return 0
	}
	r := d.result(row, *cell)
	if r == nil || len(r.Runs) == 0 {
		return 0
	}
	return Estimated(r, func(s report.Summary) float64 { return float64(s.ServerPeakRSSBytes) }).Mid
}

func throughputSizeFigure(d *plotData, dir string) (*Figure, error) {
	cells := d.sweep(SweepSize)
	if len(cells) == 0 {
		return nil, nil
	}
	return lineFigure{
		base:  "throughput-size",
		title: "Throughput as messages grow (100 connections)",
		howToRead: "Lines rise while the cost of a message is its syscalls and flatten where copying the bytes " +
			"takes over; a model whose line flattens early or falls is copying more, or in smaller pieces, than " +
			"the others.",
		xLabel: "message size (log scale)", logX: true, xTick: bytesLabel,
		panels: []linePanel{{title: "echoed payload", yLabel: "MB/s, 10⁶ bytes (log scale)", logY: true, cells: cells,
			value: func(r *Result, c Cell) (linePoint, string) {
				return estimatePoint(r, c, func(s report.Summary) float64 { return s.MBPerSec }, true, "no bytes echoed")
			}}},
		notes: d.pointNotes(cells, true),
	}.draw(d, dir)
}

// latencyPoint is a rate-sweep point: x is the rate echobench actually offered (from the
// reports, so a grid set relative to each row's own saturation still plots at true rates), and
// a point whose latency is meter-limited is ringed and noted.
func (d *plotData) latencyPoint(metric func(report.Summary) float64, notes *[]string, noted map[string]bool) pointFunc {
	return func(r *Result, c Cell) (linePoint, string) {
		pt, why := estimatePoint(r, c, metric, true, "no latency recorded")
		if !pt.ok {
			return pt, why
		}
		pt.x = d.offered(r, c)
		for _, s := range r.Runs {
			if m := s.MeterLimited; m != nil {
				pt.ringed = true
				if at := r.Row.Name + " at " + c.Name; !noted[at] {
					noted[at] = true
					*notes = append(*notes, "meter-limited (ringed), "+at+": "+m.Text())
				}
				break
			}
		}
		return pt, ""
	}
}

// offered is the mean open-loop rate the row's reports ran at, or the cell's X without them.
func (d *plotData) offered(r *Result, c Cell) float64 {
	sum, n := 0.0, 0
	for _, f := range r.Files {
		if rep := d.reports[f]; rep != nil && rep.Settings.Rate > 0 {
			sum += float64(rep.Settings.Rate)
			n++
		}
	}
	if n == 0 {
		return c.X
	}
	return sum / float64(n)
}

func latencyRateFigure(d *plotData, dir string) (*Figure, error) {
	return latencyRateLines(d, dir, lineFigure{
		base:  "latency-rate",
		title: "p99 latency as offered load grows (open loop, 1,000 connections × 64 B)",
		howToRead: "Each line is flat while the model keeps up and turns up steeply (the hockey stick) where it " +
			"saturates: the further right a model's bend, the more load it takes before its tail latency " +
			"explodes; a grey ring marks a point where echobench's own lateness is a material part of the latency.",
		xLabel: "offered load, msgs/s",
	}, latencyPanel{"p99 latency, coordinated-omission corrected", func(s report.Summary) float64 { return s.LatencyP99us }})
}

func latencyRateTailsFigure(d *plotData, dir string) (*Figure, error) {
	return latencyRateLines(d, dir, lineFigure{
		base:  "latency-rate-p50-p999",
		title: "Median and p99.9 latency as offered load grows (open loop, 1,000 connections × 64 B)",
		howToRead: "The median bends later than the tail: a model whose p99.9 (right) turns up well before its " +
			"median (left) stalls a few messages long before it is out of capacity, which is what a " +
			"thread-per-connection or a scan of every fd does under load.",
		xLabel: "offered load, msgs/s", sameY: true,
	},
		latencyPanel{"p50 latency", func(s report.Summary) float64 { return s.LatencyP50us }},
		latencyPanel{"p99.9 latency", func(s report.Summary) float64 { return s.LatencyP999us }})
}

// latencyPanel is one panel of latency against offered load: its title and the percentile it plots.
type latencyPanel struct {
	title  string
	metric func(report.Summary) float64
}

// latencyRateLines draws fig over the rate sweep with one log-scale latency panel per entry of
// panels, and gives the figure the notes its points raised while it was drawn.
func latencyRateLines(d *plotData, dir string, fig lineFigure, panels ...latencyPanel) (*Figure, error) {
	cells := d.sweep(SweepRate)
	if len(cells) == 0 {
		return nil, nil
	}
	var notes []string
	noted := map[string]bool{}
	for _, p := range panels {
		fig.panels = append(fig.panels, linePanel{title: p.title, yLabel: "latency (log scale)", logY: true,
			yTick: fmtMicros, cells: cells, value: d.latencyPoint(p.metric, &notes, noted)})
	}
	f, err := fig.draw(d, dir)
	if f != nil {
		f.Notes = append(notes, d.pointNotes(cells, false)...) // notes: filled while drawing
	}
	return f, err
}

func reconnectFigure(d *plotData, dir string) (*Figure, error) {
	cells := d.sweep(SweepReconnect)
	if len(cells) == 0 {
		return nil, nil
	}
	c := cells[len(cells)-1] // the largest, where a thread or process per connection shows most
	return barFigure{
		base:  "reconnect",
		title: "Short connections, " + c.Name + ": new connections per second and their cost",
		howToRead: "Every connection does one echo and closes, so what is ranked is the cost of accepting and " +
			"setting up a connection: a thread or a process per connection shows here as a bar several times " +
			"shorter, and as several times the CPU per connection.",
		cells: []Cell{c},
		panels: []barPanel{
			{title: "new connections per second", xLabel: "connections/s", ratio: true,
				value: d.barValue(c, func(s report.Summary) float64 { return s.NewConnsPerSec }, "no connections completed"),
				label: func(e Estimate) string { return fmtCount(e.Mid) }},
			{title: "server CPU per connection (lower is better)", xLabel: "µs per connection", ratio: true,
				value: d.barValue(c, cpuPerConnection, noCPU),
				label: func(e Estimate) string { return fmt.Sprintf("%.0f µs", e.Mid) }},
		},
		notes: d.pointNotes([]Cell{c}, true),
	}.draw(d, dir)
}

func kneeFigure(d *plotData, dir string) (*Figure, error) {
	cells := d.sweep(SweepKnee)
	if len(cells) == 0 {
		return nil, nil
	}
	var panels []barPanel
	var notes []string
	for _, c := range cells {
		bound := time.Duration(c.X * float64(time.Microsecond)).String()
		panels = append(panels, barPanel{
			title:  "p99 within " + bound,
			xLabel: "highest offered msgs/s that held the bound",
			value:  d.kneeValue(c, &notes),
			label: func(e Estimate) string {
				if e.Mid == 0 {
					return "0: not even the lowest probe held"
				}
				return fmtCount(e.Mid)
			},
			ratio: true,
		})
	}
	how := "A longer bar is a model that serves more open-loop load before its corrected p99 passes the bound"
	if len(cells) > 1 {
		how += "; the gap between a model's bars is how much more it takes if its users can wait longer, and a " +
			"model ranked lower at the tight bound than at the loose one has a long tail"
	}
	how += "."
	return barFigure{
		base:      "knee",
		title:     "The knee: the most load each model takes while keeping its p99 within a bound",
		howToRead: how, cells: cells, panels: panels, notes: notes,
	}.draw(d, dir)
}

// kneeValue is a row's knee at one bound, the mean of its searches with their interval
// (EstimatedKnee, as the tables have it). A search's note on why it stopped is kept for the
// figure's notes.
func (d *plotData) kneeValue(c Cell, notes *[]string) func(string) (Estimate, string) {
	return func(row string) (Estimate, string) {
		r := d.result(row, c)
		if r == nil || len(r.Knees) == 0 {
			return Estimate{}, missing(r, "no knee search in the reports")
		}
		seen := map[string]bool{}
		for _, k := range r.Knees {
			if k.Note != "" && !seen[k.Note] { // each run's search may stop for the same reason
				seen[k.Note] = true
				*notes = append(*notes, fmt.Sprintf("%s at %s: %s", row, c.Name, k.Note))
			}
		}
		e := EstimatedKnee(r)
		if math.IsNaN(e.Mid) {
			return Estimate{}, "no knee rate"
		}
		return e, ""
	}
}
