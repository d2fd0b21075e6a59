package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"echobench/report"
)

// synthetic is a whole matrix of made-up results: every sweep, twelve rows (the defaults, the C
// reference and a user's row with a long name), n/a cells with their reasons, rows with three
// runs and rows with one, and a JSON report behind every run, as echobench would leave them.
type synthetic struct {
	t       *testing.T
	dir     string
	cells   []Cell
	results []*Result
}

func syntheticCells() []Cell {
	var cells []Cell
	add := func(sweep string, name string, x float64) {
		cells = append(cells, Cell{Name: name, Sweep: sweep, X: x})
	}
	for _, n := range []float64{1, 10, 100, 1000, 10000} {
		add(SweepConns, fmt.Sprintf("conns=%.0f", n), n)
	}
	for _, s := range []float64{64, 1024, 16384, 65536} {
		add(SweepSize, "size="+strings.ReplaceAll(bytesLabel(s), " ", ""), s)
	}
	add(SweepPipeline, "pipeline=1", 1)
	add(SweepPipeline, "pipeline=16", 16)
	add(SweepReconnect, "reconnect", 100)
	add(SweepIdle, "idle=1", 1)
	add(SweepIdle, "idle=1000", 1000)
	add(SweepIdle, "idle=10000", 10000)
	for _, r := range []float64{10000, 30000, 60000, 100000, 150000} {
		add(SweepRate, fmt.Sprintf("rate=%.0f", r), r)
	}
	add(SweepKnee, "knee=1ms", 1000)
	add(SweepKnee, "knee=10ms", 10000)
	return cells
}

var syntheticRows = []string{"stdnet", "epoll", "async", "uring", "select", "nonblocking", "blocking",
	"blocking/128", "process", "prefork/128", CRefName, "my-library-with-a-long-name/v2"}

func newSynthetic(t *testing.T) *synthetic {
	sy := &synthetic{t: t, dir: t.TempDir(), cells: syntheticCells()}
	for i, row := range syntheticRows {
		runs := 1
		if i%2 == 0 {
			runs = 3
		}
		// Each row has its own capacity and cost, so lines separate as real ones do.
		capacity := 40000 + 12000*float64(len(syntheticRows)-i)
		for _, c := range sy.cells {
			sy.results = append(sy.results, sy.result(row, c, runs, capacity))
		}
	}
	return sy
}

// na says which (row, cell) pairs cannot run, with the reasons the harness gives.
func na(row string, c Cell) string {
	conns := c.Sweep == SweepConns || c.Sweep == SweepIdle
	switch {
	case row == "select" && conns && c.X >= 10000:
		return "select(2) cannot watch fd 1024 or above (FD_SETSIZE); use -model epoll"
	case row == "process" && conns && c.X >= 10000:
		return "process: 10000 connections exceed its child cap of 2000"
	case row == "blocking" && c.Sweep == SweepConns && c.X >= 10000:
		return "blocking: 10000 threads exceed the thread ceiling"
	case row == "prefork/128" && c.Sweep == SweepRate:
		return "prefork/128: 872 of 1000 clients wait in the listen backlog"
	case row == "nonblocking" && c.Sweep == SweepKnee && c.X == 1000:
		return "timed out after 40s"
	}
	return ""
}

func (sy *synthetic) result(row string, c Cell, runs int, capacity float64) *Result {
	r := &Result{Row: Row{Name: row, Model: row}, Cell: c.Name}
	if why := na(row, c); why != "" {
		r.NA = why
		return r
	}
	for k := 0; k < runs; k++ {
		jitter := 1 + 0.04*float64(k-1) // three runs spread ±4 %
		s := report.Summary{Model: row, Runs: 1, ConnsEstablished: int(max(c.X, 1)), ConnsEchoed: int(max(c.X, 1))}
		rate := 0
		switch c.Sweep {
		case SweepConns, SweepPipeline:
			s.MsgsPerSec = capacity * jitter * math.Min(1, (c.X+3)/300) / (1 + c.X/40000)
		case SweepSize:
			s.MsgsPerSec = capacity * jitter / (1 + c.X/4096)
			s.MBPerSec = s.MsgsPerSec * c.X / 1e6
		case SweepReconnect:
			s.NewConnsPerSec = capacity / 6 * jitter
		case SweepIdle:
			s.MsgsPerSec = 100
		case SweepRate:
			rate = int(c.X)
			load := c.X / capacity
			s.MsgsPerSec = math.Min(c.X, capacity)
			s.LatencyP50us = 40 * jitter / math.Max(0.02, 1-load)
			s.LatencyP99us = 300 * jitter / math.Max(0.005, 1-load)
			s.LatencyP999us = 900 * jitter / math.Max(0.002, 1-load)
			if row == "uring" && c.X == 150000 {
				s.MeterLimited = &report.MeterLimited{Percentile: 99, LagUs: 900, LatencyUs: 3000, SharePct: 30}
			}
		case SweepKnee:
			rate = int(capacity * 0.6)
			r.Knees = append(r.Knees, report.Knee{BoundUs: c.X, RateMsgsPerS: capacity * (0.6 + c.X/40000) * jitter})
			s.MsgsPerSec = capacity * 0.6
		}
		if c.Sweep == SweepConns && c.X == 1000 {
			s.BothSaturated = true
		}
		rss := 6e6 + 900*c.X
		if strings.HasPrefix(row, "blocking") || strings.HasPrefix(row, "process") || strings.HasPrefix(row, "prefork") {
			rss = 6e6 + 40000*c.X
		}
		s.ServerPeakRSSBytes = uint64(rss * jitter)
		s.ServerCPUPct = 90 * jitter
		if row == CRefName {
			s.ServerCPUPct = 60 * jitter
		}
		r.Runs = append(r.Runs, s)
		r.Rounds = append(r.Rounds, k)
		r.Files = append(r.Files, sy.writeReport(row, c, k, s, rate))
	}
	return r
}

func (sy *synthetic) writeReport(row string, c Cell, k int, s report.Summary, rate int) string {
	conns := 1000
	switch c.Sweep {
	case SweepConns, SweepIdle:
		conns = int(c.X)
	case SweepSize, SweepReconnect:
		conns = 100
	}
	rep := report.Report{
		Schema: report.Schema,
		Settings: report.Settings{Model: row, Conns: conns, Sizes: []int{int(sizeOf(c))}, Pipeline: int(pipelineOf(c)), Rate: rate,
			DurationS: 3, WarmupS: 1, Repeat: 1},
		Env: report.Env{Start: "2026-12-01T22:00:00Z", Kernel: "6.1.0", GoVersion: "go1.26", CPUModel: "test CPU",
			Cores: 2, GOMAXPROCS: 1, Commit: "0123456789abcdef",
			Pinning: report.Pinning{Enabled: true, ServerCPUs: "0", ClientCPUs: "1"}},
		Runs:    []report.Run{{MsgsPerSec: s.MsgsPerSec}},
		Summary: s,
	}
	if row == CRefName { // started by the harness, not by echobench
		rep.Env.Pinning = report.Pinning{Enabled: true, ClientCPUs: "1", Reason: "server started outside echobench (-addr)"}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		sy.t.Fatal(err)
	}
	path := filepath.Join(sy.dir, fmt.Sprintf("%s_%s_%d.json", strings.ReplaceAll(row, "/", "-"), c.Name, k))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		sy.t.Fatal(err)
	}
	return path
}

func sizeOf(c Cell) float64 {
	if c.Sweep == SweepSize {
		return c.X
	}
	return 64
}

func pipelineOf(c Cell) float64 {
	if c.Sweep == SweepPipeline {
		return c.X
	}
	return 1
}

// plotDir is where the test draws: a temporary directory, or $ECHOBENCH_PLOT_DIR to keep the
// figures for looking at them.
func plotDir(t *testing.T) string {
	if dir := os.Getenv("ECHOBENCH_PLOT_DIR"); dir != "" {
		return dir
	}
	return t.TempDir()
}

func TestPlotsMatrix(t *testing.T) {
	sy := newSynthetic(t)
	out := plotDir(t)
	figs, err := Plots(out, sy.results, sy.cells)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"headline", "throughput-conns", "cpu-conns", "rss-conns", "throughput-size",
		"latency-rate", "latency-rate-p50-p999", "reconnect", "knee"}
	if len(figs) != len(want) {
		t.Fatalf("Plots drew %d figures, want %d: %+v", len(figs), len(want), figs)
	}
	for i, f := range figs {
		if f.File != want[i]+".png" || f.SVG != want[i]+".svg" {
			t.Errorf("figure %d is %s and %s, want %s.png and .svg", i, f.File, f.SVG, want[i])
		}
		if f.Title == "" || f.HowToRead == "" {
			t.Errorf("%s: title %q, how to read %q: both are needed for index.md", f.File, f.Title, f.HowToRead)
		}
		checkPNG(t, filepath.Join(out, f.File))
		checkSVG(t, filepath.Join(out, f.SVG))
	}

	// Every n/a the matrix holds is a gap with its reason in the figure that would show it.
	gaps := func(name string) string {
		for _, f := range figs {
			if f.File == name+".png" {
				return strings.Join(f.Gaps, "\n")
			}
		}
		return ""
	}
	for _, tc := range []struct{ fig, want string }{
		{"throughput-conns", "select at conns=10000: select(2) cannot watch fd 1024"},
		{"throughput-conns", "blocking at conns=10000: blocking: 10000 threads exceed"},
		{"rss-conns", "mostly idle connections: process at idle=10000: process: 10000 connections exceed"},
		{"latency-rate", "prefork/128 at rate=10000, rate=30000, rate=60000, rate=100000, rate=150000: prefork/128: 872 of 1000"},
		{"knee", "nonblocking: timed out after 40s"},
	} {
		if got := gaps(tc.fig); !strings.Contains(got, tc.want) {
			t.Errorf("%s gaps lack %q:\n%s", tc.fig, tc.want, got)
		}
	}
	var notes []string
	for _, f := range figs {
		notes = append(notes, f.Notes...)
	}
	for _, want := range []string{"meter-limited (ringed), uring at rate=150000", "both saturated their cores"} {
		if !strings.Contains(strings.Join(notes, "\n"), want) {
			t.Errorf("no figure notes %q", want)
		}
	}
	if !strings.Contains(figs[3].HowToRead, "peak RSS at conns=1 and idle=1 is subtracted") {
		t.Errorf("the RSS figure does not say which baseline it subtracts: %q", figs[3].HowToRead)
	}

	if err := WriteIndex(out, "echobench comparison (synthetic)", "table one\n```\ntable two", figs,
		[]string{"BENCH=default", "fd limit 20000"}); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(out, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range figs {
		for _, want := range []string{"](" + f.File + ")", "](" + f.SVG + ")", f.HowToRead, "(#" + anchor(f.Title) + ")"} {
			if !strings.Contains(string(index), want) {
				t.Errorf("index.md lacks %q", want)
			}
		}
	}
	for _, want := range []string{"- fd limit 20000", "````text\ntable one\n```\ntable two\n````", "- select at conns=10000: select(2)"} {
		if !strings.Contains(string(index), want) {
			t.Errorf("index.md lacks %q", want)
		}
	}
}

// lowResolution draws PNGs at a quarter of their resolution for the rest of a test that only
// checks that every figure is drawn and decodes.
func lowResolution(t *testing.T) {
	saved := pngDPI
	pngDPI = 30
	t.Cleanup(func() { pngDPI = saved })
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if s := img.Bounds().Size(); pngDPI >= 96 && (s.X < 600 || s.Y < 300) {
		t.Errorf("%s is %v pixels, too small to read", path, s)
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s does not parse as XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", path, root)
	}
}

// Results without reports (the JSON files lost or never written), or with every cell n/a, must
// still give every figure, saying what is missing, rather than fail or panic on an empty log axis.
func TestPlotsWithoutData(t *testing.T) {
	lowResolution(t)
	cells := syntheticCells()
	for _, tc := range []struct {
		name   string
		result func(row string, c Cell) *Result
	}{
		{"all n/a", func(row string, c Cell) *Result {
			return &Result{Row: Row{Name: row}, Cell: c.Name, NA: "server died"}
		}},
		{"no reports", func(row string, c Cell) *Result {
			return &Result{Row: Row{Name: row}, Cell: c.Name, Runs: []report.Summary{{MsgsPerSec: 1000, ServerCPUPct: 50}},
				Files: []string{"/nonexistent/" + row + ".json"}}
		}},
		{"no rows", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var results []*Result
			for _, row := range []string{"stdnet", "epoll", CRefName} {
				for _, c := range cells {
					if tc.result != nil {
						results = append(results, tc.result(row, c))
					}
				}
			}
			out := t.TempDir()
			figs, err := Plots(out, results, cells)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 9, false: 0}[len(results) > 0]; len(figs) != want {
				t.Errorf("drew %d figures, want %d", len(figs), want)
			}
			for _, f := range figs {
				checkPNG(t, filepath.Join(out, f.File))
				checkSVG(t, filepath.Join(out, f.SVG))
			}
		})
	}
}

// Only the sweeps a matrix has get figures: the two cells of the first comparison give the
// headline and reconnect bars.
func TestPlotsPartialMatrix(t *testing.T) {
	lowResolution(t)
	cells := []Cell{{Name: "1000x64B", Sweep: SweepConns, X: 1000}, {Name: "reconnect", Sweep: SweepReconnect, X: 100}}
	results := []*Result{
		{Row: Row{Name: "stdnet"}, Cell: "1000x64B", Runs: []report.Summary{{MsgsPerSec: 75000, ServerCPUPct: 67}}},
		{Row: Row{Name: "stdnet"}, Cell: "reconnect", Runs: []report.Summary{{NewConnsPerSec: 13000, ServerCPUPct: 54}}},
	}
	figs, err := Plots(t.TempDir(), results, cells)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.File)
	}
	if got := strings.Join(names, " "); got != "headline.png throughput-conns.png cpu-conns.png rss-conns.png reconnect.png" {
		t.Errorf("figures %s", got)
	}
}

func TestConditionsCaption(t *testing.T) {
	sy := newSynthetic(t)
	c := sy.cells[3] // conns=1000
	got := conditions(c, sy.results, loadReports(sy.results))
	for _, want := range []string{"conns=1000", "1000 conns × 64 B", "1s warmup + 3s measured",
		"server on CPU 0, echobench on CPU 1", "GOMAXPROCS 1", "3 run(s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("caption %q lacks %q", got, want)
		}
	}
	// A sweep's caption states what its cells share and leaves out what the axis sweeps.
	d := newPlotData(sy.results, sy.cells)
	sweep := d.sweepCaption(d.sweep(SweepConns), "line: their mean")
	if strings.Contains(sweep, "1000 conns") || !strings.Contains(sweep, "closed loop") ||
		!strings.Contains(sweep, "1–3 runs per point") {
		t.Errorf("conns sweep caption %q", sweep)
	}
	// The C reference ran under other conditions: the caption says which, once, rather than
	// showing the majority's as everyone's.
	if want := "\nexcept C-ref: echobench on CPU 1, server started outside echobench (-addr)"; !strings.HasSuffix(sweep, want) {
		t.Errorf("conns sweep caption %q does not end in %q", sweep, want)
	}
}
