package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"echobench/report"
)

// Table prints one table ranked by the first cell's msgs/s, with every row's ratio to the
// baseline in each cell. Beside throughput it shows the server's CPU per message (or per new
// connection): on two loopback cores echobench and the server share the kernel's work almost
// evenly, so when both saturate the throughput is the pair's limit and CPU per message is what
// tells the servers apart. A row that could not run a cell shows n/a, and the reasons, and
// anything else that qualifies a figure, follow the table, so nothing is hidden.
func Table(w io.Writer, results []*Result, cells []Cell) {
	if len(cells) == 0 {
		return
	}
	byRow := map[string]map[string]*Result{}
	var rows []string
	for _, r := range results {
		if byRow[r.Row.Name] == nil {
			byRow[r.Row.Name] = map[string]*Result{}
			rows = append(rows, r.Row.Name)
		}
		byRow[r.Row.Name][r.Cell] = r
	}
	first := cells[0].Name
	msgs := func(row string) float64 {
		return byRow[row][first].Mean(func(s report.Summary) float64 { return s.MsgsPerSec })
	}
	sort.SliceStable(rows, func(i, j int) bool { return msgs(rows[i]) > msgs(rows[j]) })

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"#", "model"}
	for i, c := range cells {
		if i == 0 {
			header = append(header, c.Name+" msgs/s", "×"+Baseline, "srv µs/msg", "p50 µs", "p99 µs", "srv CPU%", "cli CPU%", "srv RSS", "threads", "procs", "echoed")
		} else {
			header = append(header, c.Name+" conns/s", "×"+Baseline, "srv µs/conn", "connect p99 µs", "srv CPU%", "srv RSS")
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	var n notes
	for rank, row := range rows {
		line := []string{fmt.Sprint(rank + 1), row}
		for i, c := range cells {
			r := byRow[row][c.Name]
			width := 11
			if i > 0 {
				width = 6
			}
			if r == nil || len(r.Runs) == 0 {
				line = append(line, "n/a")
				for k := 1; k < width; k++ {
					line = append(line, "")
				}
				if r != nil && r.NA != "" {
					n.add("n/a", fmt.Sprintf("%s, %s: %s", row, c.Name, r.NA))
				}
				continue
			}
			mean := r.Mean
			cpu := mean(func(s report.Summary) float64 { return s.ServerCPUPct })
			rss := human(mean(func(s report.Summary) float64 { return float64(s.ServerPeakRSSBytes) }))
			base := byRow[Baseline][c.Name]
			if i == 0 {
				m := mean(func(s report.Summary) float64 { return s.MsgsPerSec })
				line = append(line,
					fmt.Sprintf("%.0f", m),
					ratio(m, base, func(s report.Summary) float64 { return s.MsgsPerSec }),
					perUnit(cpu, m),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.LatencyP50us })),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.LatencyP99us }))+meterMark(r),
					fmt.Sprintf("%.0f", cpu),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.ClientCPUPct })),
					rss,
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return float64(s.ServerPeakThreads) })),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return float64(s.ServerProcesses) })),
					echoed(r),
				)
			} else {
				m := mean(func(s report.Summary) float64 { return s.NewConnsPerSec })
				line = append(line,
					fmt.Sprintf("%.0f", m),
					ratio(m, base, func(s report.Summary) float64 { return s.NewConnsPerSec }),
					perUnit(cpu, m),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.ConnectP99us })),
					fmt.Sprintf("%.0f", cpu),
					rss,
				)
			}
			n.qualify(row, c.Name, r)
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	tw.Flush()
	n.print(w)
}

// perUnit is the server's CPU per message (or connection) in µs: its CPU share of the window
// over the rate.
func perUnit(cpuPct, perSec float64) string {
	if perSec <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", cpuPct/100*1e6/perSec)
}

// meterMarker follows a p99 that is meter-limited in some run (see noteMeter).
const meterMarker = "*"

func meterMark(r *Result) string {
	for _, s := range r.Runs {
		if s.MeterLimited != nil {
			return meterMarker
		}
	}
	return ""
}

// echoed is how many connections completed an echo in the window.
func echoed(r *Result) string {
	return fmt.Sprint(r.Runs[0].ConnsEchoed)
}

// notes gathers what qualifies the figures, grouped by kind so that a condition shared by many
// rows reads as one line.
type notes struct {
	kinds  []string
	byKind map[string][]string
}

func (n *notes) add(kind, text string) {
	if n.byKind == nil {
		n.byKind = map[string][]string{}
	}
	if _, ok := n.byKind[kind]; !ok {
		n.kinds = append(n.kinds, kind)
	}
	n.byKind[kind] = append(n.byKind[kind], text)
}

// Note kinds, in the words printed before the rows they apply to.
const (
	noteBoth     = "both echobench and the server saturated their cores (loopback splits the kernel's work between them), so msgs/s is the pair's limit; compare srv µs/msg"
	noteClient   = "echobench saturated its core while the server did not: msgs/s is a floor for the server; compare srv µs/msg"
	noteMeter    = meterMarker + " meter-limited: echobench's own schedule lag is more than a tenth of the latency at p99 or p99.9 (report.JudgeMeter), so that latency is partly the load generator's"
	noteBacklog  = "fewer connections echoed in the window than were established: the rest waited in the listen backlog (a pool, or thread or process creation too slow)"
	noteRejected = "the server closed connections unserved, by its own count"
	noteVerify   = "VERIFY FAILURES: the server echoed wrong bytes"
	noteFailed   = "connects failed or the run ended in error"
	noteWarning  = "echobench warned"
)

// qualify notes what a (row, cell) figure needs said beside it.
func (n *notes) qualify(row, cell string, r *Result) {
	at := row + "/" + cell
	var both, client, verify, rejected uint64
	var failed, meter []string
	for _, s := range r.Runs {
		if m := s.MeterLimited; m != nil {
			meter = append(meter, m.Text())
		}
		switch {
		case s.BothSaturated:
			both++
		case s.ClientSaturated:
			client++
		}
		verify += s.VerifyFailuresTotal
		rejected = max(rejected, s.ServerRejected)
		if s.ConnsFailed > 0 || s.Error != "" {
			failed = append(failed, fmt.Sprintf("%d connects failed %s", s.ConnsFailed, firstLine(s.Error)))
		}
	}
	if both > 0 {
		n.add(noteBoth, at)
	} else if client > 0 {
		n.add(noteClient, at)
	}
	if len(meter) > 0 {
		n.add(noteMeter, fmt.Sprintf("%s (%d of %d runs; %s)", at, len(meter), len(r.Runs), meter[0]))
	}
	if s := r.Runs[0]; s.ConnsEchoed < s.ConnsEstablished && !strings.Contains(cell, "reconnect") {
		n.add(noteBacklog, fmt.Sprintf("%s: %d of %d", at, s.ConnsEchoed, s.ConnsEstablished))
	}
	if rejected > 0 {
		n.add(noteRejected, fmt.Sprintf("%s: %d", at, rejected))
	}
	if verify > 0 {
		n.add(noteVerify, fmt.Sprintf("%s: %d messages", at, verify))
	}
	for _, f := range failed {
		n.add(noteFailed, at+": "+f)
	}
	// echobench's other warnings (a server that had to be killed after SIGTERM, -c beyond the
	// ephemeral ports) are passed on; saturation and verify failures are noted above already.
	for _, w := range strings.Split(r.Warning, "; ") {
		if w != "" && !strings.Contains(w, "saturated") && !strings.Contains(w, "of its") && !strings.Contains(w, "VERIFY") {
			n.add(noteWarning, at+": "+w)
		}
	}
}

func (n *notes) print(w io.Writer) {
	for _, kind := range n.kinds {
		rows := n.byKind[kind]
		if kind == "n/a" {
			fmt.Fprintln(w)
			for _, r := range rows {
				fmt.Fprintf(w, "  n/a: %s\n", r)
			}
			continue
		}
		fmt.Fprintf(w, "\n  %s:\n    %s\n", kind, strings.Join(rows, ", "))
	}
}

func ratio(m float64, base *Result, f func(report.Summary) float64) string {
	if base == nil || len(base.Runs) == 0 {
		return "n/a"
	}
	b := base.Mean(f)
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", m/b)
}

func human(bytes float64) string {
	switch {
	case bytes >= 1<<30:
		return fmt.Sprintf("%.1fG", bytes/(1<<30))
	case bytes >= 1<<20:
		return fmt.Sprintf("%.0fM", bytes/(1<<20))
	default:
		return fmt.Sprintf("%.0fK", bytes/(1<<10))
	}
}

// Caption states the conditions a cell was measured under (load, window, pinning, machine,
// commit), read from the cell's reports rather than assumed from the flags.
func Caption(results []*Result, cell Cell) string {
	return conditions(cell, results, loadReports(results))
}
