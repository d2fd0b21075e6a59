package bench

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestWriteCSVRoundTrips writes summary.csv for the synthetic matrix, reads it back with
// encoding/csv, and checks every line against the estimates it was written from: one line per
// model × cell × statistic, n/a lines with their reason and no numbers, exact values.
func TestWriteCSVRoundTrips(t *testing.T) {
	rows := []string{Baseline, "epoll", "select", "a \"quoted\", comma'd row"}
	cells := matrixCells()
	results := matrixResults(rows, cells)
	path := filepath.Join(t.TempDir(), "summary.csv")
	if err := WriteCSV(path, results, cells); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("summary.csv does not read back: %v", err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range CSVHeader {
		if _, ok := col[h]; !ok {
			t.Fatalf("header %v lacks %q", recs[0], h)
		}
	}
	want := 0
	for range rows {
		for _, c := range cells {
			want += len(StatisticsOf(c))
		}
	}
	if got := len(recs) - 1; got != want {
		t.Errorf("%d lines, want %d (model × cell × statistic)", got, want)
	}

	g := newGrid(results)
	cellByName := map[string]Cell{}
	for _, c := range cells {
		cellByName[c.Name] = c
	}
	statByName := map[string]Statistic{}
	for _, c := range cells {
		for _, st := range StatisticsOf(c) {
			statByName[st.Name] = st
		}
	}
	seen := map[string]bool{}
	for _, rec := range recs[1:] {
		get := func(h string) string { return rec[col[h]] }
		c, st := cellByName[get("cell")], statByName[get("statistic")]
		r := g.at(get("model"), c)
		if r == nil || st.Name == "" {
			t.Fatalf("line %v names no result or statistic", rec)
		}
		seen[get("statistic")] = true
		if x, _ := strconv.ParseFloat(get("x"), 64); x != c.X || get("sweep") != c.Sweep || get("unit") != st.Unit {
			t.Errorf("line %v: x, sweep or unit differ from cell %+v / %+v", rec, c, st)
		}
		e := st.Estimate(r)
		if get("runs") != strconv.Itoa(e.N) {
			t.Errorf("line %v: runs %s, want %d", rec, get("runs"), e.N)
		}
		if r.NA != "" {
			if get("na_reason") != r.NA || get("mid") != "" || get("ratio_to_baseline") != "" {
				t.Errorf("n/a line %v: want its reason and no numbers", rec)
			}
			continue
		}
		for h, v := range map[string]float64{"mid": e.Mid, "ci95_lo": e.Lo, "ci95_hi": e.Hi} {
			if got, err := strconv.ParseFloat(get(h), 64); err != nil || got != v {
				t.Errorf("line %v: %s = %q, want %v exactly", rec, h, get(h), v)
			}
		}
		ratio, ok := st.Ratio(r, g.at(Baseline, c))
		if !ok {
			if get("ratio_to_baseline") != "" {
				t.Errorf("line %v: a ratio where there is none", rec)
			}
			continue
		}
		for h, v := range map[string]float64{"ratio_to_baseline": ratio.Mid, "ratio_ci95_lo": ratio.Lo, "ratio_ci95_hi": ratio.Hi} {
			if got, err := strconv.ParseFloat(get(h), 64); err != nil || got != v {
				t.Errorf("line %v: %s = %q, want %v exactly", rec, h, get(h), v)
			}
		}
	}
	for _, st := range []Statistic{StatMsgsPerSec, StatMBPerSec, StatP50, StatP99, StatP999, StatServerUsMsg,
		StatServerCPU, StatClientCPU, StatServerRSS, StatRSSPerConn, StatThreads, StatNewConns, StatKneeRate} {
		if !seen[st.Name] {
			t.Errorf("no line of statistic %s", st.Name)
		}
	}
}

// TestWriteCSVSingleRun checks that one run gives its value with empty interval columns rather
// than an interval of zero width.
func TestWriteCSVSingleRun(t *testing.T) {
	cell := Cell{Name: "conns=1000", Sweep: SweepConns, X: 1000}
	results := []*Result{runs(Baseline, cell.Name, []float64{100}, nil), runs("epoll", cell.Name, []float64{150}, nil)}
	path := filepath.Join(t.TempDir(), "summary.csv")
	if err := WriteCSV(path, results, []Cell{cell}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		if rec[0] == "epoll" && rec[4] == StatMsgsPerSec.Name {
			if rec[6] != "1" || rec[7] != "150" || rec[8] != "" || rec[9] != "" || rec[10] != "1.5" || rec[11] != "" {
				t.Errorf("single-run line %q: want runs 1, mid 150, ratio 1.5, no intervals", rec)
			}
			return
		}
	}
	t.Errorf("no epoll msgs/s line in %q", recs)
}
