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
