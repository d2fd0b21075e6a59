package report

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJudgeMeter checks the rule on synthetic numbers: a lag above a tenth of the latency at p99
// or p99.9 flags it, naming the first percentile that tripped; anything else does not.
func TestJudgeMeter(t *testing.T) {
	lat := Latency{Count: 1000, P99us: 1000, P999us: 5000}
	for _, tc := range []struct {
		name    string
		lag     *ScheduleLag
		latency Latency
		want    float64 // the percentile flagged; 0 = none
	}{
		{"closed loop: no schedule", nil, lat, 0},
		{"no sends in the window", &ScheduleLag{}, lat, 0},
		{"no echoes in the window", &ScheduleLag{Count: 10, P99us: 900}, Latency{}, 0},
		{"precise meter, slow server", &ScheduleLag{Count: 1000, P99us: 20, P999us: 80}, lat, 0},
		{"exactly a tenth is not more", &ScheduleLag{Count: 1000, P99us: 100, P999us: 500}, lat, 0},
		{"p99 trips", &ScheduleLag{Count: 1000, P99us: 101, P999us: 200}, lat, 99},
		{"p99.9 trips alone", &ScheduleLag{Count: 1000, P99us: 50, P999us: 501}, lat, 99.9},
		{"both trip: p99 named", &ScheduleLag{Count: 1000, P99us: 900, P999us: 4900}, lat, 99},
		{"overloaded meter, lag is the latency", &ScheduleLag{Count: 1000, P99us: 9000, P999us: 9500}, Latency{Count: 1000, P99us: 9100, P999us: 9600}, 99},
	} {
		m := JudgeMeter(tc.lag, tc.latency)
		switch {
		case tc.want == 0 && m != nil:
			t.Errorf("%s: flagged %+v, want no flag", tc.name, m)
		case tc.want != 0 && (m == nil || m.Percentile != tc.want):
			t.Errorf("%s: flag %+v, want p%g", tc.name, m, tc.want)
		}
	}
	m := JudgeMeter(&ScheduleLag{Count: 1, P99us: 250}, lat)
	if m.LagUs != 250 || m.LatencyUs != 1000 || m.SharePct != 25 {
		t.Errorf("flag %+v, want lag 250 of 1000 µs, 25%%", m)
	}
	if text := m.Text(); !strings.Contains(text, "p99") || !strings.Contains(text, "250") || !strings.Contains(text, "25%") {
		t.Errorf("flag in words %q lacks the percentile, the lag or the share", text)
	}
}

// TestMeterLimitedJSON checks that the flag is absent from a report without it (older readers
// and closed loop see the schema unchanged) and named meter_limited where set.
func TestMeterLimitedJSON(t *testing.T) {
	b, err := json.Marshal(Report{Runs: []Run{{}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "meter_limited") {
		t.Errorf("unflagged report mentions meter_limited: %s", b)
	}
	flag := &MeterLimited{Percentile: 99, LagUs: 500, LatencyUs: 1000, SharePct: 50}
	b, err = json.Marshal(Report{Runs: []Run{{MeterLimited: flag}}, Summary: Summary{MeterLimited: flag}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), `"meter_limited":{"percentile":99,"schedule_lag_us":500,"latency_us":1000,"share_pct":50}`); got != 2 {
		t.Errorf("want meter_limited in the run and the summary, got %d in %s", got, b)
	}
}
