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
// baseline in each cell. A row that could not run a cell shows n/a, and the reasons follow the
// table, so nothing a model cannot do is hidden.
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
	main := cells[0].Name
	msgs := func(row string) float64 {
		return byRow[row][main].Mean(func(s report.Summary) float64 { return s.MsgsPerSec })
	}
	sort.SliceStable(rows, func(i, j int) bool { return msgs(rows[i]) > msgs(rows[j]) })

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"#", "model"}
	for i, c := range cells {
		if i == 0 {
			header = append(header, c.Name+" msgs/s", "×"+Baseline, "p50 µs", "p99 µs", "srv CPU%", "srv RSS", "threads", "procs", "cli CPU%")
		} else {
			header = append(header, c.Name+" conns/s", "×"+Baseline, "connect p99 µs", "srv CPU%", "srv RSS")
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	var notes []string
	for rank, row := range rows {
		line := []string{fmt.Sprint(rank + 1), row}
		for i, c := range cells {
			r := byRow[row][c.Name]
			width := 9
			if i > 0 {
				width = 5
			}
			if r == nil || len(r.Runs) == 0 {
				line = append(line, "n/a")
				for k := 1; k < width; k++ {
					line = append(line, "")
				}
				if r != nil && r.NA != "" {
					notes = append(notes, fmt.Sprintf("%s, %s: n/a: %s", row, c.Name, r.NA))
				}
				continue
			}
			base := byRow[Baseline][c.Name]
			mean := func(f func(report.Summary) float64) float64 { return r.Mean(f) }
			rss := human(mean(func(s report.Summary) float64 { return float64(s.ServerPeakRSSBytes) }))
			cpu := fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.ServerCPUPct }))
			if i == 0 {
				m := mean(func(s report.Summary) float64 { return s.MsgsPerSec })
				line = append(line,
					fmt.Sprintf("%.0f", m),
					ratio(m, base, func(s report.Summary) float64 { return s.MsgsPerSec }),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.LatencyP50us })),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.LatencyP99us })),
					cpu, rss,
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return float64(s.ServerPeakThreads) })),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return float64(s.ServerProcesses) })),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.ClientCPUPct })),
				)
			} else {
				m := mean(func(s report.Summary) float64 { return s.NewConnsPerSec })
				line = append(line,
					fmt.Sprintf("%.0f", m),
					ratio(m, base, func(s report.Summary) float64 { return s.NewConnsPerSec }),
					fmt.Sprintf("%.0f", mean(func(s report.Summary) float64 { return s.ConnectP99us })),
					cpu, rss,
				)
			}
			for _, s := range r.Runs {
				if s.VerifyFailures > 0 {
					notes = append(notes, fmt.Sprintf("%s, %s: %d VERIFY FAILURES: the server echoed wrong bytes", row, c.Name, s.VerifyFailures))
				}
			}
			for _, s := range r.Runs {
				if s.ClientSaturated {
					notes = append(notes, fmt.Sprintf("%s, %s: echobench saturated its core: the figure is a floor for the server", row, c.Name))
					break
				}
			}
			for _, s := range r.Runs {
				if s.ServerRejected > 0 {
					notes = append(notes, fmt.Sprintf("%s, %s: the server closed %d connections unserved (its own count)", row, c.Name, s.ServerRejected))
					break
				}
			}
			for _, s := range r.Runs {
				if s.ConnsFailed > 0 || s.Error != "" {
					notes = append(notes, fmt.Sprintf("%s, %s: %d connects failed %s", row, c.Name, s.ConnsFailed, firstLine(s.Error)))
					break
				}
			}
			if r.Warning != "" {
				notes = append(notes, fmt.Sprintf("%s, %s: %s", row, c.Name, r.Warning))
			}
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
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
