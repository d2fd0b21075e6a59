package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// IndexFile is the page WriteIndex writes into a results directory.
const IndexFile = "index.md"

// WriteIndex writes dir/index.md, the page a reader opens first: the run's conditions (notes, one
// line each: the level, the fd limit, pinning, how RSS per connection is taken, ...), the tables
// as printed, and every figure with the sentence that says what to look for in it, then the
// points it leaves out and why, and what qualifies the points it draws. Figure paths are relative
// to dir, as Plots returns them, so the directory can be moved or published as a whole.
func WriteIndex(dir string, title string, tables string, figs []Figure, notes []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", oneLine(title))

	b.WriteString("## Conditions\n\n")
	if len(notes) == 0 {
		b.WriteString("No conditions were recorded for this run; each figure's caption states its own.\n")
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", oneLine(n))
	}

	b.WriteString("\n## Tables\n\n")
	if strings.TrimSpace(tables) == "" {
		b.WriteString("No tables were printed for this run.\n")
	} else {
		fence := codeFence(tables)
		fmt.Fprintf(&b, "%stext\n%s\n%s\n", fence, strings.TrimRight(tables, "\n"), fence)
	}

	b.WriteString("\n## Figures\n\n")
	if len(figs) == 0 {
		b.WriteString("No figures were drawn for this run.\n")
	}
	if len(figs) > 0 {
		b.WriteString(figureKey)
	}
	for _, f := range figs {
		fmt.Fprintf(&b, "- [%s](#%s)\n", oneLine(f.Title), anchor(f.Title))
	}
	for _, f := range figs {
		fmt.Fprintf(&b, "\n### %s\n\n", oneLine(f.Title))
		if f.HowToRead != "" {
			fmt.Fprintf(&b, "%s\n\n", oneLine(f.HowToRead))
		}
		fmt.Fprintf(&b, "![%s](%s)\n", oneLine(f.Title), link(f.File))
		if f.SVG != "" {
			fmt.Fprintf(&b, "\n[SVG](%s)\n", link(f.SVG))
		}
		if len(f.Gaps) > 0 {
			b.WriteString("\nNot drawn (n/a):\n\n")
			for _, g := range f.Gaps {
				fmt.Fprintf(&b, "- %s\n", oneLine(g))
			}
		}
		if len(f.Notes) > 0 {
			b.WriteString("\nNotes:\n\n")
			for _, n := range f.Notes {
				fmt.Fprintf(&b, "- %s\n", oneLine(n))
			}
		}
	}
	path := filepath.Join(dir, IndexFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// figureKey says once what every figure has in common, so the sentences under each can say
// only what to look for in it.
const figureKey = "Every row keeps one colour and marker in every figure; the C reference server (" + CRefName +
	") is black: a dashed line in the line figures, a black bar and a dashed line across the bar figures, the " +
	"floor a model can approach. A line or bar is the mean of its " +
	"point's runs, and a band or whisker its 95 % interval where the point has two runs or more. A gap is " +
	"a point the row could not run; the reason is listed under the figure.\n\n"

// oneLine keeps a text on one Markdown line: a reason copied from an error message may carry a
// newline that would otherwise end its list item.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// codeFence is a backtick fence longer than any run of backticks in the text, so the tables
// cannot close their own block.
func codeFence(text string) string {
	longest, run := 0, 0
	for _, r := range text {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// anchor is the heading's id as GitHub renders it: lower case, spaces to hyphens, and every
// character but letters, digits, hyphens and underscores dropped.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(oneLine(title)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// link is a relative path as a Markdown link target: slashes kept, spaces escaped.
func link(path string) string {
	return strings.ReplaceAll(filepath.ToSlash(path), " ", "%20")
}
