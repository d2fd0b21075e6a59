package report

import "fmt"

// MeterShare is the share of a latency percentile above which echobench's schedule lag at the
// same percentile makes that latency meter-limited. This is the one place the rule lives.
//
// In open loop a message's latency runs from its intended send time, so every microsecond
// echobench itself is late in issuing a send it was free to make (its schedule lag) is in the
// reported latency. A run's latency is meter-limited when, at the 99th or the 99.9th
// percentile, the schedule lag is more than MeterShare of the corrected latency at the same
// percentile. Same rank against same rank, because a late send's latency is its lag plus the
// server's time, so the ratio of the two tails is roughly what a perfect meter would take off
// the reported figure. p99 and p99.9 because those are the tails the summary and `make bench`
// report, and where a late meter shows first. 10% because repeats of one cell on this machine
// already move a p99 by about that much: a smaller share could not change a comparison, a
// larger one could.
//
// Closed loop has no schedule (each send waits for the previous echo), hence no lag and no
// flag: there a slow client shows as lower throughput and as saturation instead.
const MeterShare = 0.10

// MeterLimited says which latency percentile echobench's own lateness is a material share of,
// and by how much: the first of p99 and p99.9 that trips the rule.
type MeterLimited struct {
	Percentile float64 `json:"percentile"`      // 99 or 99.9
	LagUs      float64 `json:"schedule_lag_us"` // echobench's schedule lag at Percentile
	LatencyUs  float64 `json:"latency_us"`      // the corrected latency at Percentile
	// SharePct is LagUs over LatencyUs. It can pass 100: the lag covers only the sends issued
	// from the schedule, the latency every message, including those sent the moment an echo
	// freed a late connection's window.
	SharePct float64 `json:"share_pct"`
}

// JudgeMeter applies the rule to a run's (or the merged runs') schedule lag and corrected
// latency; nil means the meter is not a material part of the latency, or there is no schedule.
func JudgeMeter(lag *ScheduleLag, latency Latency) *MeterLimited {
	if lag == nil || lag.Count == 0 || latency.Count == 0 {
		return nil
	}
	for _, at := range []struct{ q, lag, latency float64 }{
		{99, lag.P99us, latency.P99us},
		{99.9, lag.P999us, latency.P999us},
	} {
		if at.latency > 0 && at.lag > MeterShare*at.latency {
			return &MeterLimited{Percentile: at.q, LagUs: at.lag, LatencyUs: at.latency, SharePct: at.lag / at.latency * 100}
		}
	}
	return nil
}

// Text is the flag in words, for the summary and the notes under `make bench`'s table.
func (m *MeterLimited) Text() string {
	return fmt.Sprintf("p%g: schedule lag %.0f µs is %.0f%% of the latency %.0f µs", m.Percentile, m.LagUs, m.SharePct, m.LatencyUs)
}
