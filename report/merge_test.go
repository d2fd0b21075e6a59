package report

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TestMergeMatchesOneHistogram splits one set of latency samples between two agents' reports,
// takes each report through its JSON, merges them, and checks that the merged percentiles are
// exactly those of a single histogram of every sample, and that counts add up.
func TestMergeMatchesOneHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	whole := hdrhistogram.New(1, 60_000_000, 2)
	halves := []*hdrhistogram.Histogram{hdrhistogram.New(1, 60_000_000, 2), hdrhistogram.New(1, 60_000_000, 2)}
	for i := range 200_000 {
		v := int64(20 + rng.ExpFloat64()*300) // µs, a long tail
		if i%7 == 0 {
			v *= 40
		}
		whole.RecordValue(v)
		halves[i%2].RecordValue(v)
	}
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var reps []*Report
	for i, h := range halves {
		r := &Report{Settings: Settings{Conns: 50, Sizes: []int{64}, Addr: []string{"198.18.0.1:7", "198.18.0.2:7"}[i]},
			Runs: []Run{{MsgsPerSec: 1000 * float64(i+1), Conns: Conns{Established: 50}, BytesSentTotal: 640,
				WindowStart: t0, WindowEnd: t0.Add(10 * time.Second)}}}
		r.Summarize("epoll", Hists{Latency: h})
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, &back)
	}
	m, differ, err := Merge(reps)
	if err != nil {
		t.Fatal(err)
	}
	if len(differ) != 0 {
		t.Errorf("settings differ: %q, want none (the address is each agent's own)", differ)
	}
	if got, want := m.Summary.LatencyP50us, float64(whole.ValueAtQuantile(50)); got != want {
		t.Errorf("merged p50 %v, one histogram's %v", got, want)
	}
	if got, want := m.Summary.LatencyP99us, float64(whole.ValueAtQuantile(99)); got != want {
		t.Errorf("merged p99 %v, one histogram's %v", got, want)
	}
	if got, want := m.Summary.LatencyP999us, float64(whole.ValueAtQuantile(99.9)); got != want {
		t.Errorf("merged p99.9 %v, one histogram's %v", got, want)
	}
	mh, err := m.HDR.Hists()
	if err != nil {
		t.Fatal(err)
	}
	if mh.Latency.TotalCount() != whole.TotalCount() || mh.Latency.ValueAtQuantile(99.99) != whole.ValueAtQuantile(99.99) {
		t.Errorf("merged histogram: %d samples, p99.99 %d; one histogram: %d, %d",
			mh.Latency.TotalCount(), mh.Latency.ValueAtQuantile(99.99), whole.TotalCount(), whole.ValueAtQuantile(99.99))
	}
	if m.Summary.MsgsPerSec != 3000 || m.Summary.ConnsEstablished != 100 || m.Summary.BytesSentTotal != 1280 || len(m.Agents) != 2 {
		t.Errorf("merged summary %+v: want 3000 msgs/s, 100 connections, 1280 bytes, 2 agents", m.Summary)
	}
	reps[1].Settings.Conns = 60
	if _, differ, _ := Merge(reps); len(differ) != 1 || !strings.Contains(differ[0], "conns") {
		t.Errorf("agents with different -c: %q, want the one difference named", differ)
	}
	reps[1].Settings.Conns = 50
	reps[1].Runs[0].WindowStart, reps[1].Runs[0].WindowEnd = t0.Add(2*time.Second), t0.Add(12*time.Second)
	if _, differ, _ := Merge(reps); len(differ) != 1 || !strings.Contains(differ[0], "overlap for 8s of 10s (80 %)") {
		t.Errorf("agents 2 s apart: %q, want the overlap said", differ)
	}
	reps[1].HDR = nil
	if _, _, err := Merge(reps); err == nil {
		t.Error("a report without histograms merged")
	}
}
