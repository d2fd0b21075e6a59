package lesson

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Header is what the lesson's page says about the run as a whole.
type Header struct {
	Start   time.Time
	Elapsed time.Duration
	Command string // how the page was made: "make lesson"
	Dir     string // the raw data
	Env     string // kernel, Go, CPUs, commit, pinning: one line
}

// Render writes the lesson as markdown: for each experiment its claims (Chinese, file and line,
// English), what it did, the commands, the figures, the tests and the verdict with its rule.
func Render(w io.Writer, h Header, es []*Experiment, fs []Finding) {
	fmt.Fprintf(w, "# The lesson, run\n\n")
	fmt.Fprintf(w, "Each claim of the teaching notes (`%s/`, Chinese) is quoted with its file and line, translated,\n", SeedsDir)
	fmt.Fprintf(w, "and run as an experiment against the models. The verdict is computed from the figures by the\n")
	fmt.Fprintf(w, "rule stated under it (package `lesson`, one judge function per claim); \"not measurable yet\" means\n")
	fmt.Fprintf(w, "the experiment could not decide, and says why. Compare figures within one claim, as ratios:\n")
	fmt.Fprintf(w, "absolute numbers on a shared two-core machine are noise.\n\n")
	RenderVerdicts(w, h, es, fs)
	for i, e := range es {
		renderOne(w, e, fs[i])
	}
}

// RenderVerdicts writes the run's line and the table of verdicts, claim by claim: the head of the
// lesson's page, and what docs/models.md carries between its verdict markers (SpliceVerdicts).
func RenderVerdicts(w io.Writer, h Header, es []*Experiment, fs []Finding) {
	fmt.Fprintf(w, "- Made by `%s` at %s in %s; raw data in `%s`\n", h.Command, h.Start.UTC().Format(time.RFC3339), h.Elapsed.Round(time.Second), h.Dir)
	fmt.Fprintf(w, "- %s\n\n", h.Env)
	fmt.Fprintf(w, "| # | claim | verdict |\n| --- | --- | --- |\n")
	for i, e := range es {
		fmt.Fprintf(w, "| %d | %s | %s |\n", e.ID, cell(e.Title), cell(fs[i].Verdict.Text()))
	}
	fmt.Fprintln(w)
}

// The markers between which a page carries the verdicts of the last full `make lesson`, which
// rewrites what is between them, so the tour's copy is never older than the lesson's.
const (
	VerdictsBegin = "<!-- verdicts: written by make lesson; edits here are overwritten -->"
	VerdictsEnd   = "<!-- end of verdicts -->"
)

// SpliceVerdicts returns page with the text between its verdict markers replaced by verdicts, or
// an error if the markers are missing or out of order.
func SpliceVerdicts(page, verdicts string) (string, error) {
	a := strings.Index(page, VerdictsBegin)
	b := strings.Index(page, VerdictsEnd)
	if a < 0 || b < a {
		return "", fmt.Errorf("no %q ... %q markers, in that order", VerdictsBegin, VerdictsEnd)
	}
	return page[:a+len(VerdictsBegin)] + "\n\n" + verdicts + page[b:], nil
}

func renderOne(w io.Writer, e *Experiment, f Finding) {
	fmt.Fprintf(w, "## %d. %s\n\n", e.ID, e.Title)
	for _, q := range e.Claims {
		fmt.Fprintf(w, "> %s\n>\n> — `%s` line %d\n>\n> *%s*\n\n", q.Chinese, q.File, q.Line, q.English)
	}
	fmt.Fprintf(w, "**Experiment.** %s\n\n", e.Method)
	if len(f.Commands) > 0 {
		fmt.Fprintf(w, "```sh\n%s\n```\n\n", strings.Join(f.Commands, "\n"))
	}
	if len(f.Figures) > 0 {
		fmt.Fprintf(w, "| figure | value |\n| --- | --- |\n")
		for _, fig := range f.Figures {
			v := FormatValue(fig.Value, fig.Unit)
			if fig.Note != "" {
				v += " (" + fig.Note + ")"
			}
			fmt.Fprintf(w, "| %s | %s |\n", cell(fig.Name), cell(v))
		}
		fmt.Fprintln(w)
	}
	for _, tr := range f.Tests {
		status := "passed"
		if !tr.Passed {
			status = "FAILED"
		}
		fmt.Fprintf(w, "- `%s`: %s\n", tr.Command, status)
	}
	if len(f.Tests) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if len(f.Notes) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "**Verdict: %s.** %s\n\n", f.Verdict.Text(), f.Verdict.Why)
	fmt.Fprintf(w, "*Rule:* %s\n\n", e.Rule)
	if len(f.Raw) > 0 {
		names := make([]string, len(f.Raw))
		for i, r := range f.Raw {
			names[i] = "`" + baseName(r) + "`"
		}
		fmt.Fprintf(w, "Raw data: %s; took %.1f s of its %v budget.\n\n", strings.Join(names, ", "), f.Elapsed.Seconds(), e.Budget)
	} else {
		fmt.Fprintf(w, "Took %.1f s of its %v budget.\n\n", f.Elapsed.Seconds(), e.Budget)
	}
}

// FormatValue prints a figure: whole numbers as they are, others to three significant digits,
// a value that is not a number as n/a, and yes/no for the unit "bool".
func FormatValue(v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if unit == "bool" {
		if v != 0 {
			return "yes"
		}
		return "no"
	}
	var s string
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		s = strconv.FormatFloat(v, 'f', 0, 64)
	default:
		s = strconv.FormatFloat(v, 'g', 3, 64)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
