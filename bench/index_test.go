package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteIndex(t *testing.T) {
	dir := t.TempDir()
	figs := []Figure{
		{File: "a.png", SVG: "a.svg", Title: "Throughput as connections grow (64 B ping-pong)",
			HowToRead: "Look for the bend.", Gaps: []string{"select at conns=10000: select(2) cannot\nwatch fd 1024"}},
		{File: "b c.png", Title: "The knee: p99 ≤ 1ms", HowToRead: "Longer is better.", Notes: []string{"a note"}},
	}
	if err := WriteIndex(dir, "echobench comparison", "tables\n", figs, []string{"BENCH=quick"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"# echobench comparison\n",
		"- BENCH=quick\n",
		"```text\ntables\n```\n",
		"- [Throughput as connections grow (64 B ping-pong)](#throughput-as-connections-grow-64-b-ping-pong)\n",
		"(#the-knee-p99--1ms)",
		"Look for the bend.\n\n![Throughput as connections grow (64 B ping-pong)](a.png)\n\n[SVG](a.svg)\n",
		"- select at conns=10000: select(2) cannot watch fd 1024\n", // one list item, not two
		"![The knee: p99 ≤ 1ms](b%20c.png)\n",
		"Notes:\n\n- a note\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("index.md lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "[SVG]") != 1 {
		t.Errorf("a figure without an SVG got a link to one:\n%s", got)
	}
}

func TestWriteIndexEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := WriteIndex(dir, "t", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	for _, want := range []string{"No conditions were recorded", "No tables were printed", "No figures were drawn"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("empty index.md lacks %q", want)
		}
	}
	if err := WriteIndex(filepath.Join(dir, "missing"), "t", "", nil, nil); err == nil || !strings.Contains(err.Error(), IndexFile) {
		t.Errorf("writing into a missing directory: %v, want an error naming %s", err, IndexFile)
	}
}
