package measure

import (
	"fmt"
	"strings"
	"testing"

	"echobench/loadgen"
	"echobench/report"
)

func TestJudgeSaturation(t *testing.T) {
	pinned := Spec{ServerCPUs: []int{0}, ClientCPUs: []int{1}}
	for _, tc := range []struct {
		name                  string
		spec                  Spec
		client                report.ClientAccounting
		serverPct             float64
		saturated, both, warn bool
	}{
		{"one thread pegged on two cores", Spec{}, report.ClientAccounting{Cores: 2, EngineThreads: 1, CPUPct: 95}, 150, true, false, true},
		{"unpinned, client takes as much as the server", Spec{}, report.ClientAccounting{Cores: 2, EngineThreads: 2, CPUPct: 95}, 90, true, false, true},
		{"unpinned on idle cores, server is the limit", Spec{}, report.ClientAccounting{Cores: 8, EngineThreads: 8, CPUPct: 120}, 100, false, false, false},
		{"unpinned, server dominates", Spec{}, report.ClientAccounting{Cores: 2, EngineThreads: 2, CPUPct: 60}, 120, false, false, false},
		{"pinned, both pegged", pinned, report.ClientAccounting{Cores: 1, EngineThreads: 1, CPUPct: 97}, 96, true, true, true},
		{"pinned, client pegged only", pinned, report.ClientAccounting{Cores: 1, EngineThreads: 1, CPUPct: 97}, 50, true, false, true},
		{"pinned, server pegged only", pinned, report.ClientAccounting{Cores: 1, EngineThreads: 1, CPUPct: 60}, 99, false, false, false},
	} {
		var warnings []string
		c := &cell{spec: tc.spec, warn: func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }}
		cl := tc.client
		c.judgeSaturation(&cl, &report.ServerAccounting{CPUPct: tc.serverPct})
		if cl.Saturated != tc.saturated || cl.BothSaturated != tc.both || (len(warnings) > 0) != tc.warn {
			t.Errorf("%s: saturated %v both %v warnings %q; want %v %v warn %v", tc.name, cl.Saturated, cl.BothSaturated, warnings, tc.saturated, tc.both, tc.warn)
		}
		if tc.both && (len(warnings) != 1 || !strings.Contains(warnings[0], "both saturated")) {
			t.Errorf("%s: warnings %q, want one saying both are saturated", tc.name, warnings)
		}
	}
}

func TestFromResultFailuresAndLag(t *testing.T) {
	lag := loadgen.NewHistogram()
	for _, us := range []int64{1, 2, 3, 500} {
		lag.RecordValue(us)
	}
	// An engine that counts failures only in the window still yields a total at least as big.
	res := &loadgen.Result{VerifyFailures: 2, Incomplete: 7, ScheduleLag: lag}
	run := FromResult(0, res, true, false)
	if run.VerifyFailuresTotal != 2 || run.Incomplete != 7 {
		t.Errorf("run = total %d incomplete %d, want 2 and 7", run.VerifyFailuresTotal, run.Incomplete)
	}
	if sl := run.ScheduleLag; sl == nil || sl.Count != 4 || sl.MaxUs < 500 || sl.P50us > 3 {
		t.Errorf("schedule lag = %+v, want 4 sends, p50 ≤ 3, max ≥ 500", sl)
	}
	if closed := FromResult(0, res, false, false); closed.ScheduleLag != nil {
		t.Errorf("closed loop reports a schedule lag: %+v", closed.ScheduleLag)
	}
	res.VerifyFailuresTotal = 5
	rep := report.Report{Runs: []report.Run{FromResult(0, res, true, false), FromResult(1, res, true, false)}}
	rep.Summarize("m", report.Hists{})
	if rep.Summary.VerifyFailuresTotal != 10 || rep.Summary.Incomplete != 14 {
		t.Errorf("summary = total %d incomplete %d, want 10 and 14", rep.Summary.VerifyFailuresTotal, rep.Summary.Incomplete)
	}
	var out strings.Builder
	rep.WriteTable(&out)
	for _, want := range []string{"2 in the window, 5 in the whole run", "incomplete", "schedule lag µs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFromResultPerSecond(t *testing.T) {
	res := &loadgen.Result{PerSecond: []loadgen.Second{{Messages: 3, Bytes: 192, P99us: 40}}}
	run := FromResult(0, res, false, false)
	if want := (report.Second{Messages: 3, Bytes: 192, P99us: 40}); len(run.PerSecond) != 1 || run.PerSecond[0] != want {
		t.Errorf("per second = %+v, want [%+v]", run.PerSecond, want)
	}
}

// TestMeterLimitedRunAndSummary follows the flag from the engine's histograms to the run, the
// summary over merged runs and the printed table; closed loop never carries it.
func TestMeterLimitedRunAndSummary(t *testing.T) {
	result := func(lagUs int64) *loadgen.Result {
		lat, lag := loadgen.NewHistogram(), loadgen.NewHistogram()
		for range 1000 {
			lat.RecordValue(1000)
			lag.RecordValue(lagUs)
		}
		return &loadgen.Result{Latency: lat, Uncorrected: lat, ScheduleLag: lag}
	}
	precise, late := result(20), result(600)
	if m := FromResult(0, precise, true, false).MeterLimited; m != nil {
		t.Errorf("lag 20 µs of 1000 flagged: %+v", m)
	}
	run := FromResult(1, late, true, false)
	if m := run.MeterLimited; m == nil || m.Percentile != 99 || m.LagUs < 590 {
		t.Errorf("lag 600 µs of 1000: flag %+v, want p99 at about 600 µs", m)
	}
	if closed := FromResult(0, late, false, false); closed.MeterLimited != nil {
		t.Errorf("closed loop flagged: %+v", closed.MeterLimited)
	}
	var h report.Hists
	AddHists(&h, precise)
	AddHists(&h, late)
	rep := report.Report{Settings: report.Settings{Rate: 1000}, Runs: []report.Run{FromResult(0, precise, true, false), run}}
	rep.Summarize("m", h)
	if m := rep.Summary.MeterLimited; m == nil || m.Percentile != 99 {
		t.Errorf("summary of a precise and a late run: flag %+v, want p99 (half the sends were 600 µs late)", m)
	}
	var out strings.Builder
	rep.WriteTable(&out)
	if got := strings.Count(out.String(), "METER-LIMITED"); got != 2 {
		t.Errorf("table shows METER-LIMITED %d times, want in run 2 and the summary:\n%s", got, out.String())
	}
}
