package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"unicode/utf8"
)

// TableWidth is the widest line the printed summary may have, so that it reads in a terminal;
// what does not fit goes to summary.csv (WriteCSV), which has every statistic of every cell.
const TableWidth = 120

// nameWidth bounds the model column. A user row's name can be long ("my-server -threads 8");
// longer names are cut with an ellipsis here and kept whole in the CSV.
const nameWidth = 22

// Table prints the comparison as several tables that each fit TableWidth columns:
//
//   - a ranked table for the headline cell (1,000 connections × 64 B if the matrix has it):
//     msgs/s and its 95% interval, the ratio to the baseline with its interval, the server's CPU
//     per message, p99, CPU and RSS. Where a row's interval overlaps the row above's, its rank is
//     printed as ≈: the data do not order the two, so the table does not either;
//   - the same ranked table for each reconnect cell, by new connections/s;
//   - one compact table per sweep, rows × the sweep's values, of the sweep's main statistic:
//     msgs/s and server µs/msg by connections, MB/s by message size, msgs/s by pipeline depth,
//     RSS per connection when idle, p99 by offered rate, the knee rate per p99 bound;
//   - the notes: n/a reasons, meter-limited figures, saturation, anything else that qualifies a
//     figure, so nothing is hidden.
//
// On two loopback cores echobench and the server share the kernel's work almost evenly, so when
// both saturate msgs/s is the pair's limit and CPU per message is what tells servers apart:
// that is why it stands beside throughput everywhere.
func Table(w io.Writer, results []*Result, cells []Cell) {
	if len(cells) == 0 {
		return
	}
	g := newGrid(results)
	var n notes
	first := true
	section := func(title string) {
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		printWrapped(w, title, "  ")
	}
	head := headlineCell(cells)
	ranked := map[string]bool{head.Name: true}
	section(fmt.Sprintf("%s: ranked by msgs/s; ±, (lo–hi): 95%% intervals; ≈: the interval overlaps the row above's", head.Name))
	g.ranked(w, head, StatMsgsPerSec)
	for _, c := range cells {
		if c.Sweep == SweepReconnect && !ranked[c.Name] {
			ranked[c.Name] = true
			section(fmt.Sprintf("%s: ranked by new connections/s", c.Name))
			g.ranked(w, c, StatNewConns)
		}
	}
	for _, c := range cells {
		if c.Sweep == SweepUDP && !ranked[c.Name] {
			ranked[c.Name] = true
			section(fmt.Sprintf("%s: UDP, ranked by msgs/s, with loss", c.Name))
			g.udpRanked(w, c)
		}
	}
	for _, st := range sweepTables {
		var swept []Cell
		for _, c := range cells {
			if c.Sweep == st.sweep {
				swept = append(swept, c)
			}
		}
		if len(swept) == 0 || (len(swept) == 1 && ranked[swept[0].Name]) {
			continue // its one cell already has a ranked table
		}
		section(st.title)
		g.sweep(w, swept, st)
	}
	for _, c := range cells {
		for _, row := range g.rows {
			n.qualify(row, c, g.at(row, c))
		}
	}
	n.print(w)
}

// headlineCell is the cell the first table ranks: 1,000 connections × 64 B ping-pong, where the
// IO model shows, if the matrix has it; else the first closed-loop cell; else the first.
func headlineCell(cells []Cell) Cell {
	for _, c := range cells {
		if c.Sweep == SweepConns && c.X == 1000 {
			return c
		}
	}
	for _, c := range cells {
		switch c.Sweep {
		case SweepReconnect, SweepIdle, SweepRate, SweepKnee, SweepUDP:
		default:
			return c
		}
	}
	return cells[0]
}

// grid indexes the results by row and cell, keeping the rows in the order they were run.
type grid struct {
	rows   []string
	byCell map[string]map[string]*Result // cell → row → result
}

func newGrid(results []*Result) *grid {
	g := &grid{byCell: map[string]map[string]*Result{}}
	seen := map[string]bool{}
	for _, r := range results {
		if !seen[r.Row.Name] {
			seen[r.Row.Name] = true
			g.rows = append(g.rows, r.Row.Name)
		}
		if g.byCell[r.Cell] == nil {
			g.byCell[r.Cell] = map[string]*Result{}
		}
		g.byCell[r.Cell][r.Row.Name] = r
	}
	return g
}

func (g *grid) at(row string, c Cell) *Result { return g.byCell[c.Name][row] }

// base is the baseline's result in a cell, or nil when it has none to divide by.
func (g *grid) base(c Cell, st Statistic) *Result {
	b := g.at(Baseline, c)
	if b == nil || len(st.sample(b).values) == 0 {
		return nil
	}
	return b
}

// rankedRow is one row of a ranked table, with the estimate it is ordered by.
type rankedRow struct {
	name  string
	r     *Result
	value Estimate // of the statistic
	ratio Estimate // to the baseline
	hasR  bool
	key   Estimate // what the rank and the ties are decided on: ratio if it exists, else value
}

// ranked prints one cell's rows ordered by st. Rows are ranked on their ratio to the baseline
// where it exists, because that ratio is paired by round and so free of the drift between rounds
// that every row's own interval carries; without a baseline in the cell, on their own estimates.
// The ratio's middle is a geometric mean of per-round ratios, the figure beside it an arithmetic
// mean of runs, so two rows close enough to be ≈ can appear out of the order of their means.
func (g *grid) ranked(w io.Writer, c Cell, st Statistic) {
	base := g.base(c, st)
	var rows []rankedRow
	var missing []string
	for _, name := range g.rows {
		r := g.at(name, c)
		v := st.Estimate(r)
		if v.N == 0 {
			missing = append(missing, name)
			continue
		}
		rr := rankedRow{name: name, r: r, value: v, key: v}
		if base != nil {
			rr.ratio, rr.hasR = st.Ratio(r, base)
		}
		rows = append(rows, rr)
	}
	for i := range rows {
		if rows[i].hasR {
			rows[i].key = rows[i].ratio
		}
	}
	// Rows with a ratio first; a row without one (its figure is zero, or there is no baseline)
	// cannot be placed among them, so it follows, by its own figure.
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].hasR != rows[j].hasR {
			return rows[i].hasR
		}
		return rows[i].key.Mid > rows[j].key.Mid
	})

	perMsg, perUnit, p99, p99Head := StatServerUsMsg, "srv µs/msg", StatP99, "p99 µs"
	if st.Name == StatNewConns.Name {
		perMsg, perUnit, p99, p99Head = StatServerUsConn, "srv µs/conn", StatConnectP99, "connect p99 µs"
	}
	unit := strings.TrimSuffix(st.Unit, "/s") + "/s"
	t := table{header: []string{"#", "model", unit, "±95%", "×" + Baseline + " (95%)", perUnit, p99Head, "srv CPU%", "srv RSS", "runs"}, left: 2}
	single := false
	for i, rr := range rows {
		rank := fmt.Sprint(i + 1)
		above := rankedRow{}
		if i > 0 {
			above = rows[i-1]
		}
		if i > 0 && rr.hasR == above.hasR && rr.key.Interval() && above.key.Interval() && rr.key.Overlaps(above.key) {
			rank = tieMark
		}
		single = single || !rr.value.Interval()
		ratio := "n/a"
		switch {
		case rr.name == Baseline && base != nil:
			ratio = "1 (baseline)"
		case rr.hasR:
			ratio = fmtRatio(rr.ratio)
		}
		t.add(rank, rr.name, fmtCount(rr.value.Mid), fmtPlusMinus(rr.value), ratio,
			fmtPlain(perMsg.Estimate(rr.r).Mid, 1),
			fmtPlain(p99.Estimate(rr.r).Mid, 0)+meterMark(rr.r),
			fmtPlain(StatServerCPU.Estimate(rr.r).Mid, 0),
			human(StatServerRSS.Estimate(rr.r).Mid),
			fmt.Sprint(rr.value.N))
	}
	for _, name := range missing {
		t.add("", name, "n/a", "", "", "", "", "", "", "0")
	}
	t.print(w)
	if single {
		fmt.Fprintln(w, "  1 run: no interval, so no ≈ either; that order is one sample, not a result")
	}
}

// tieMark replaces the rank of a row whose interval overlaps the row above's.
const tieMark = "≈"

// sweepTable is one compact table: every row's main statistic at each value of one sweep.
type sweepTable struct {
	sweep string
	stat  Statistic
	title string
	// marginal adds a column with the slope between the sweep's first and last value: the idle
	// table's RSS per extra connection, which the per-connection figures hide under the
	// server's fixed footprint.
	marginal bool
}

// sweepTables are the compact tables in the order they print. Their titles name the statistic
// and the axis only: the load each cell ran (size, connections, loop) is in its caption, read
// from its reports.
var sweepTables = []sweepTable{
	{sweep: SweepConns, stat: StatMsgsPerSec, title: "msgs/s by connections"},
	{sweep: SweepConns, stat: StatServerUsMsg, title: "server CPU µs per message by connections"},
	{sweep: SweepSize, stat: StatMBPerSec, title: "MB/s by message size"},
	{sweep: SweepPipeline, stat: StatMsgsPerSec, title: "msgs/s by pipeline depth"},
	{sweep: SweepIdle, stat: StatRSSPerConn, title: "server RSS per connection, mostly idle connections", marginal: true},
	{sweep: SweepRate, stat: StatP99, title: "p99 latency (corrected for coordinated omission) by offered msgs/s"},
	{sweep: SweepKnee, stat: StatKneeRate, title: "knee: the highest offered msgs/s whose corrected p99 held the bound"},
}

func (g *grid) sweep(w io.Writer, cells []Cell, st sweepTable) {
	sort.SliceStable(cells, func(i, j int) bool { return cells[i].X < cells[j].X })
	t := table{header: []string{"model"}, left: 1}
	for _, c := range cells {
		t.header = append(t.header, sweepLabel(c))
	}
	if st.marginal && len(cells) > 1 {
		t.header = append(t.header, "per extra conn")
	}
	single, past, noKnee := false, false, false
	for _, row := range g.rows {
		line := []string{row}
		for _, c := range cells {
			r := g.at(row, c)
			e := st.stat.Estimate(r)
			if e.N == 0 {
				line = append(line, "n/a")
				continue
			}
			if st.stat.Name == StatKneeRate.Name && e.Hi == 0 {
				// Every search ran and none held the bound down to its lowest probe: there is no
				// knee to print, and 0 msgs/s would read as a measured rate.
				line = append(line, "none")
				noKnee = true
				continue
			}
			single = single || !e.Interval()
			v := fmtStat(st.stat, e.Mid)
			if e.Interval() {
				v += " " + fmtPlusMinus(e)
			}
			if st.stat.Name == StatP99.Name {
				v += meterMark(r)
				if c.Sweep == SweepRate && StatMsgsPerSec.Estimate(r).Mid < pastSaturation*c.X {
					v += pastMarker
					past = true
				}
			}
			line = append(line, v)
		}
		if st.marginal && len(cells) > 1 {
			line = append(line, g.marginalRSS(row, cells[0], cells[len(cells)-1]))
		}
		t.add(line...)
	}
	t.print(w)
	fmt.Fprintln(w, "  ± is each row's own 95% interval, drift between rounds included; the ratios in summary.csv are paired")
	if single {
		fmt.Fprintln(w, "  figures without ± are of 1 run")
	}
	if past {
		fmt.Fprintf(w, "  %s achieved below %.0f%% of the offered rate: past saturation, the latency is the queue's\n",
			pastMarker, pastSaturation*100)
	}
	if noKnee {
		fmt.Fprintln(w, "  none: no probe held the bound, down to the lowest the search tried (the knee's JSON lists them)")
	}
}

// pastSaturation is the share of the offered rate below which an open-loop cell counts as past
// the server's saturation: queues then grow for the whole window and p99 measures the window's
// length more than the server.
const pastSaturation = 0.95

// pastMarker follows a p99 measured past saturation.
const pastMarker = "!"

// marginalRSS is the growth of the server's RSS per connection added between two idle cells.
func (g *grid) marginalRSS(row string, lo, hi Cell) string {
	a, b := g.at(row, lo), g.at(row, hi)
	ra, rb := StatServerRSS.Estimate(a), StatServerRSS.Estimate(b)
	if ra.N == 0 || rb.N == 0 || len(a.Runs) == 0 || len(b.Runs) == 0 {
		return "n/a"
	}
	conns := float64(b.Runs[0].ConnsEstablished - a.Runs[0].ConnsEstablished)
	if conns <= 0 {
		return "n/a"
	}
	return human((rb.Mid - ra.Mid) / conns)
}

// sweepLabel is a cell's value on its sweep's axis, as a column header.
func sweepLabel(c Cell) string {
	switch c.Sweep {
	case SweepSize:
		return fmtBytes(c.X)
	case SweepRate:
		return fmtCount(c.X) + "/s"
	case SweepKnee:
		return "p99≤" + fmtMicros(c.X)
	case SweepPipeline:
		return fmt.Sprintf("depth %g", c.X)
	case SweepConns, SweepIdle, SweepReconnect:
		return fmtCount(c.X) + " conns"
	}
	return c.Name
}

// meterMarker follows a p99 that is meter-limited in some run (see noteMeter).
const meterMarker = "*"

func meterMark(r *Result) string {
	if r == nil {
		return ""
	}
	for _, s := range r.Runs {
		if s.MeterLimited != nil {
			return meterMarker
		}
	}
	return ""
}

// Caption states the conditions a cell was measured under (load, window, pinning, machine,
// commit), read from the cell's reports rather than assumed from the flags, wrapped so that
// indented by echocompare it still fits TableWidth.
func Caption(results []*Result, cell Cell) string {
	var lines []string
	for _, l := range strings.Split(conditions(cell, results, loadReports(results)), "\n") {
		lines = append(lines, wrap(l, TableWidth-6, "")...)
	}
	return strings.Join(lines, "\n")
}

// table lays out rows of cells in columns: the first left columns aligned left (rank, name),
// the rest right, two spaces apart. A table wider than TableWidth is split into several, each
// repeating the left columns.
type table struct {
	header []string
	rows   [][]string
	left   int
}

func (t *table) add(cells ...string) {
	t.rows = append(t.rows, cells)
}

const (
	columnGap   = 2
	tableIndent = "  "
)

func (t *table) print(w io.Writer) {
	for i := range t.rows {
		t.rows[i][t.left-1] = cutName(t.rows[i][t.left-1])
	}
	width := make([]int, len(t.header))
	for c, h := range t.header {
		width[c] = utf8.RuneCountInString(h)
		for _, r := range t.rows {
			if c < len(r) {
				width[c] = max(width[c], utf8.RuneCountInString(r[c]))
			}
		}
	}
	fixed := utf8.RuneCountInString(tableIndent)
	for c := 0; c < t.left; c++ {
		fixed += width[c] + columnGap
	}
	for start := t.left; start < len(t.header); {
		end, used := start, fixed
		for end < len(t.header) && (end == start || used+width[end] <= TableWidth) {
			used += width[end] + columnGap
			end++
		}
		if start > t.left {
			fmt.Fprintln(w)
		}
		cols := append(seq(0, t.left), seq(start, end)...)
		t.printColumns(w, cols, width)
		start = end
	}
}

func (t *table) printColumns(w io.Writer, cols []int, width []int) {
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cols {
			s := ""
			if c < len(cells) {
				s = cells[c]
			}
			pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(s))
			if c < t.left {
				b.WriteString(s + pad)
			} else {
				b.WriteString(pad + s)
			}
			if i < len(cols)-1 {
				b.WriteString(strings.Repeat(" ", columnGap))
			}
		}
		fmt.Fprintln(w, tableIndent+strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// cutName shortens a row name to nameWidth runes.
func cutName(s string) string {
	if utf8.RuneCountInString(s) <= nameWidth {
		return s
	}
	return string([]rune(s)[:nameWidth-1]) + "…"
}

// fmtPlusMinus is an estimate's interval as ± a share of its middle, or "1 run".
func fmtPlusMinus(e Estimate) string {
	if !e.Interval() {
		return "1 run"
	}
	h := e.HalfWidth() * 100
	switch {
	case math.IsInf(h, 0) || h >= 999:
		return "±>999%"
	case h >= 10:
		return fmt.Sprintf("±%.0f%%", h)
	}
	return fmt.Sprintf("±%.1f%%", h)
}

// fmtRatio is a ratio with its interval: "1.23 (1.18–1.29)"; "1.23 (1 run)" without one.
// Below 0.1 two decimals would round a process-per-connection row's 0.013 to 0.01, so such a
// ratio keeps two significant figures instead.
func fmtRatio(e Estimate) string {
	f := func(v float64) string {
		if v < 0.095 {
			return fmt.Sprintf("%.2g", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
	if !e.Interval() {
		return f(e.Mid) + " (1 run)"
	}
	return fmt.Sprintf("%s (%s–%s)", f(e.Mid), f(e.Lo), f(e.Hi))
}

// fmtStat formats a statistic's value for a compact table cell.
func fmtStat(st Statistic, v float64) string {
	switch st.Unit {
	case "msgs/s", "conns/s":
		return fmtCount(v)
	case "us":
		if st.Name == StatServerUsMsg.Name || st.Name == StatServerUsConn.Name {
			return fmtPlain(v, 1)
		}
		return fmtMicros(v)
	case "bytes":
		return human(v)
	case "MB/s":
		return fmtPlain(v, 1)
	}
	return fmtPlain(v, 0)
}

func fmtPlain(v float64, decimals int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", decimals, v)
}

// fmtCount is a count or rate with a k or M suffix and three significant figures.
func fmtCount(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "n/a"
	case a >= 999.5e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case a >= 999.5e3:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 999.5:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// fmtMicros is a latency: µs below a millisecond, ms below a second, else s.
func fmtMicros(us float64) string {
	switch {
	case math.IsNaN(us):
		return "n/a"
	case us >= 999.5e3:
		return fmt.Sprintf("%.3gs", us/1e6)
	case us >= 999.5:
		return fmt.Sprintf("%.3gms", us/1e3)
	}
	return fmt.Sprintf("%.0fµs", us)
}

// fmtBytes is a message size: 64B, 1KiB, 64KiB.
func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20 && math.Mod(b, 1<<20) == 0:
		return fmt.Sprintf("%gMiB", b/(1<<20))
	case b >= 1<<10 && math.Mod(b, 1<<10) == 0:
		return fmt.Sprintf("%gKiB", b/(1<<10))
	}
	return fmt.Sprintf("%gB", b)
}

func human(bytes float64) string {
	switch {
	case math.IsNaN(bytes):
		return "n/a"
	case bytes >= 1<<30:
		return fmt.Sprintf("%.1fG", bytes/(1<<30))
	case bytes >= 1<<20:
		return fmt.Sprintf("%.0fM", bytes/(1<<20))
	case bytes >= 10<<10:
		return fmt.Sprintf("%.0fK", bytes/(1<<10))
	case bytes >= 1<<10:
		return fmt.Sprintf("%.1fK", bytes/(1<<10))
	}
	return fmt.Sprintf("%.0fB", bytes)
}
