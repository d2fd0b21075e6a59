package report

import (
	"strings"
	"testing"
)

// TestJudgeHost checks the steal rule: either side at or above StealSharePct flags the run,
// below it or unread does not.
func TestJudgeHost(t *testing.T) {
	pct := func(v float64) *float64 { return &v }
	below := StealSharePct / 2
	for _, tc := range []struct {
		name   string
		client *float64
		server *ServerAccounting
		want   bool
	}{
		{"bare metal", pct(0), &ServerAccounting{StealPct: pct(0)}, false},
		{"not read", nil, nil, false},
		{"a little on both", pct(below), &ServerAccounting{StealPct: pct(below)}, false},
		{"client at the share", pct(StealSharePct), &ServerAccounting{StealPct: pct(0)}, true},
		{"server above, client unread", nil, &ServerAccounting{StealPct: pct(3)}, true},
		{"server unread, client above", pct(2), &ServerAccounting{}, true},
	} {
		h := JudgeHost(ClientAccounting{StealPct: tc.client}, tc.server)
		if (h != nil) != tc.want {
			t.Errorf("%s: host-limited %v, want %v", tc.name, h != nil, tc.want)
		}
		if h != nil && !strings.Contains(h.Text(), "steal") {
			t.Errorf("%s: text %q does not say steal", tc.name, h.Text())
		}
	}
}

// TestTableSaysWhenTheHostStole: a run whose client CPU the hypervisor stole says so, and its
// meter-limited flag no longer advises more CPU or workers, which would not help.
func TestTableSaysWhenTheHostStole(t *testing.T) {
	stolen, server := 4.5, 0.2
	meter := &MeterLimited{Percentile: 99, LagUs: 1300, LatencyUs: 8000, SharePct: 16}
	for _, tc := range []struct {
		name       string
		client     *float64
		want, lack []string
	}{
		{"stolen", &stolen, []string{"host steal", "echobench's CPUs 4.5%", "HOST-LIMITED", "rerun when the host is quieter"}, []string{"-workers"}},
		{"not stolen", &server, []string{"echobench's CPUs 0.2%", "-workers"}, []string{"HOST-LIMITED"}},
	} {
		run := Run{MeterLimited: meter, Client: ClientAccounting{StealPct: tc.client}, Server: &ServerAccounting{StealPct: &server}}
		run.HostLimited = JudgeHost(run.Client, run.Server)
		r := &Report{Settings: Settings{Rate: 30000, Conns: 1000}, Runs: []Run{run}}
		var table strings.Builder
		r.WriteTable(&table)
		for _, w := range tc.want {
			if !strings.Contains(table.String(), w) {
				t.Errorf("%s: the table does not say %q:\n%s", tc.name, w, table.String())
			}
		}
		for _, l := range tc.lack {
			if strings.Contains(table.String(), l) {
				t.Errorf("%s: the table says %q:\n%s", tc.name, l, table.String())
			}
		}
	}
}

// TestHostTextSaysWhatWasNotRead: a server whose steal was not read is not printed as 0%, and
// the summary keeps the most stolen run by either side.
func TestHostTextSaysWhatWasNotRead(t *testing.T) {
	stolen, little := 3.0, 0.5
	h := JudgeHost(ClientAccounting{StealPct: &stolen}, nil)
	if h == nil || !strings.Contains(h.Text(), "not read") || strings.Contains(h.Text(), "0.0% of the server") {
		t.Errorf("unread server: %v", h)
	}
	server := JudgeHost(ClientAccounting{StealPct: &little}, &ServerAccounting{StealPct: &[]float64{4}[0]})
	r := Report{Runs: []Run{{HostLimited: h}, {HostLimited: server}, {}}}
	r.Summarize("", Hists{})
	if got := r.Summary.HostLimited; got != server {
		t.Errorf("summary keeps %+v, want the run whose server lost 4%%", got)
	}
}
