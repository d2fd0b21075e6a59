package report

import (
	"strings"
	"testing"
)

// TestTableSaysWhenLagWasNotMeasured: a saturated open-loop run has a schedule but no lag samples
// (no send ever had room when it came due). Its zeros must not read as a punctual meter.
func TestTableSaysWhenLagWasNotMeasured(t *testing.T) {
	for _, tc := range []struct {
		lag  ScheduleLag
		want string
	}{
		{ScheduleLag{Count: 0}, "no samples"},
		{ScheduleLag{Count: 10, P50us: 7, P99us: 40, P999us: 90, MaxUs: 120}, "p50 7  p99 40  p99.9 90  max 120"},
	} {
		r := &Report{Settings: Settings{Rate: 60000, Conns: 1000}, Runs: []Run{{ScheduleLag: &tc.lag}}}
		var table strings.Builder
		r.WriteTable(&table)
		if !strings.Contains(table.String(), tc.want) {
			t.Errorf("lag %+v: the table does not say %q:\n%s", tc.lag, tc.want, table.String())
		}
	}
}
