package report

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestMeanCI95(t *testing.T) {
	mean, sd, lo, hi := MeanCI95([]float64{100})
	if mean != 100 || sd != 0 || lo != 100 || hi != 100 {
		t.Errorf("one run: %v %v %v %v", mean, sd, lo, hi)
	}
	mean, sd, lo, hi = MeanCI95([]float64{90, 100, 110})
	// stddev 10, t(2 df) = 4.302652729911275, half-width t*10/sqrt(3).
	half := 4.302652729911275 * 10 / math.Sqrt(3)
	if mean != 100 || math.Abs(sd-10) > 1e-9 || math.Abs(lo-(100-half)) > 1e-9 || math.Abs(hi-(100+half)) > 1e-9 {
		t.Errorf("three runs: %v %v %v %v", mean, sd, lo, hi)
	}
}

func TestDiffPct(t *testing.T) {
	for _, tc := range []struct {
		server, client uint64
		want           float64
	}{{0, 0, 0}, {100, 100, 0}, {101, 100, 1}, {99, 100, -1}, {5, 0, 100}} {
		if got := DiffPct(tc.server, tc.client); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("DiffPct(%d, %d) = %v, want %v", tc.server, tc.client, got, tc.want)
		}
	}
}

// TestSummaryFieldNames pins the names `make bench` reads: renaming one breaks the harness.
func TestSummaryFieldNames(t *testing.T) {
	b, err := json.Marshal(Report{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		`"msgs_per_s"`, `"mb_per_s"`, `"latency_p50_us"`, `"latency_p99_us"`, `"conns_established"`,
		`"conns_failed"`, `"new_conns_per_s"`, `"connect_p50_us"`, `"connect_p99_us"`, `"server_cpu_s"`,
		`"server_peak_rss_bytes"`, `"server_peak_threads"`, `"server_processes"`, `"client_cpu_s"`,
		`"verify_failures"`, `"verify_failures_total"`, `"incomplete"`, `"model"`, `"summary"`, `"settings"`, `"env"`, `"runs"`,
	} {
		if !strings.Contains(string(b), name) {
			t.Errorf("JSON lacks %s", name)
		}
	}
}
