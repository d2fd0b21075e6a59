package report

import (
	"fmt"
	"strings"
)

// StealSharePct is the share of a side's CPU wall time over the window, in percent, that the
// hypervisor may take (steal, procstat.Steal) before the run's latency tails count as partly the
// host's. This is the one place the rule lives.
//
// Why 1%: a send that falls due while the client's CPU is stolen is late by the rest of that
// pause, and an echo due from a stolen server CPU is slow by it; the pauses come at random
// moments with respect to the schedule, so when they cover 1% of the time about 1% of the
// messages meet one, which is where the p99 reads them. Below it only p99.9 and beyond can be the
// host's, and those are the percentiles a reader already expects to move between runs.
const StealSharePct = 1.0

// HostLimited is a run's steal where either side reached StealSharePct; nil if neither did or
// neither could be read.
type HostLimited struct {
	ClientPct float64  `json:"client_steal_pct"`           // over echobench's CPUs
	ServerPct *float64 `json:"server_steal_pct,omitempty"` // over the server's CPUs; nil when not read
}

// worst is the larger of the two sides' steal.
func (h *HostLimited) worst() float64 {
	if h.ServerPct != nil {
		return max(h.ClientPct, *h.ServerPct)
	}
	return h.ClientPct
}

// JudgeHost applies the rule to one run's accounting.
func JudgeHost(cl ClientAccounting, sv *ServerAccounting) *HostLimited {
	var h HostLimited
	hit := false
	if p := cl.StealPct; p != nil {
		h.ClientPct = *p
		hit = *p >= StealSharePct
	}
	if sv != nil && sv.StealPct != nil {
		h.ServerPct = sv.StealPct
		hit = hit || *sv.StealPct >= StealSharePct
	}
	if !hit {
		return nil
	}
	return &h
}

// Text is the flag in words, for the summary, the warning and the notes under `make bench`'s table.
func (h *HostLimited) Text() string {
	server := "the server's not read"
	if h.ServerPct != nil {
		server = fmt.Sprintf("%.1f%% of the server's", *h.ServerPct)
	}
	return fmt.Sprintf("the hypervisor took %.1f%% of echobench's CPUs and %s during the window (steal)", h.ClientPct, server)
}

// stealText is a run's steal on each side, for its summary.
func stealText(cl ClientAccounting, sv *ServerAccounting) string {
	var parts []string
	if p := cl.StealPct; p != nil {
		parts = append(parts, fmt.Sprintf("echobench's CPUs %.1f%%", *p))
	}
	if sv != nil && sv.StealPct != nil {
		parts = append(parts, fmt.Sprintf("the server's %.1f%%", *sv.StealPct))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, ", ") + " of the window's wall time (the hypervisor ran something else; 0 on bare metal)"
}
