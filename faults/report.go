package faults

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mark is a verdict's one-character form for the matrix.
func mark(v Verdict) string {
	switch v {
	case Holds:
		return "ok"
	case Breaks:
		return "BREAKS"
	case Limitation:
		return "limit"
	}
	return "-"
}

// WriteMarkdown writes the report: the rules, the matrix of verdicts, and each scenario's cells
// with their figures and details.
func WriteMarkdown(w io.Writer, cells []Cell, scenarios []Scenario, header string) error {
	var b strings.Builder
	b.WriteString("# make faults\n\n" + header + "\n\n")
	b.WriteString("Verdicts: **ok** = holds, **BREAKS** = the rule failed where nothing in the model's design says it should, ")
	b.WriteString("**limit** = an expected limitation, stated in the model's doc.go, with the figure that shows how far; **-** = n/a.\n\n")
	writeMatrix(&b, cells, scenarios)
	rows, byKey := index(cells)
	for i, s := range scenarios {
		fmt.Fprintf(&b, "## %d. %s\n\n%s.\n\n| row | verdict | figure | detail |\n|---|---|---|---|\n", i+1, s.Name, s.Rule)
		for _, r := range rows {
			c, ok := byKey[r+"\x00"+s.Name]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r, c.Verdict, cellText(c.Figure), cellText(c.Detail))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMatrix writes the verdicts alone, model by scenario, the scenarios numbered as in the
// report's sections.
func WriteMatrix(w io.Writer, cells []Cell, scenarios []Scenario) error {
	var b strings.Builder
	writeMatrix(&b, cells, scenarios)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeMatrix(b *strings.Builder, cells []Cell, scenarios []Scenario) {
	rows, byKey := index(cells)
	var perModel []Scenario
	for _, s := range scenarios {
		if !s.Once {
			perModel = append(perModel, s)
		}
	}
	b.WriteString("| model |")
	for i := range perModel {
		fmt.Fprintf(b, " %d |", i+1)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(perModel)) + "\n")
	for _, r := range rows {
		if r == BinariesRow {
			continue
		}
		b.WriteString("| " + r + " |")
		for _, s := range perModel {
			c, ok := byKey[r+"\x00"+s.Name]
			if !ok {
				b.WriteString(" |")
				continue
			}
			b.WriteString(" " + mark(c.Verdict) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\nScenarios: ")
	for i, s := range perModel {
		fmt.Fprintf(b, "%d %s; ", i+1, s.Name)
	}
	b.WriteString("\n\n")
}

// cellText keeps a figure or detail from breaking a markdown table.
func cellText(s string) string {
	return strings.NewReplacer("|", "/", "\n", " ").Replace(strings.TrimSpace(s))
}

// index returns the rows in the order they first appear and the cells by row and scenario.
func index(cells []Cell) ([]string, map[string]Cell) {
	var rows []string
	seen := map[string]bool{}
	byKey := map[string]Cell{}
	for _, c := range cells {
		if !seen[c.Row] {
			seen[c.Row] = true
			rows = append(rows, c.Row)
		}
		byKey[c.Row+"\x00"+c.Scenario] = c
	}
	return rows, byKey
}

// WriteCSV writes one line per cell.
func WriteCSV(w io.Writer, cells []Cell) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"row", "scenario", "verdict", "figure", "detail", "seconds"})
	for _, c := range cells {
		cw.Write([]string{c.Row, c.Scenario, string(c.Verdict), c.Figure, strings.TrimSpace(c.Detail), strconv.FormatFloat(c.Took.Seconds(), 'f', 1, 64)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteSummary writes the matrix legend and every cell that is not ok, for a terminal.
func WriteSummary(w io.Writer, cells []Cell) {
	counts := map[Verdict]int{}
	for _, c := range cells {
		counts[c.Verdict]++
	}
	fmt.Fprintf(w, "faults: %d cells: %d hold, %d break, %d expected limitations, %d n/a\n", len(cells), counts[Holds], counts[Breaks], counts[Limitation], counts[NotApplicable])
	for _, c := range cells {
		if c.Verdict == Breaks || c.Verdict == Limitation {
			fmt.Fprintf(w, "  %-16s %-22s %-20s %s\n      %s\n", c.Row, c.Scenario, c.Verdict, c.Figure, strings.TrimSpace(c.Detail))
		}
	}
}
