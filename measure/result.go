package measure

import (
	"echobench/loadgen"
	"echobench/report"
)

// FromResult turns the engine's result into a Run; the accounting is filled in by the caller.
// udp adds the datagram accounting of a UDP run.
func FromResult(index int, res *loadgen.Result, openLoop, udp bool) report.Run {
	r := report.Run{Index: index}
	if res == nil {
		return r
	}
	r.MsgsPerSec = res.MsgsPerSec()
	r.MBPerSec = res.MBPerSec()
	r.Messages = res.Messages
	r.Bytes = res.Bytes
	r.ElapsedS = res.Elapsed.Seconds()
	r.WindowStart, r.WindowEnd, r.WindowLateS = res.WindowStart, res.WindowEnd, res.WindowLate.Seconds()
	r.BytesSentTotal, r.BytesReceivedTotal = res.TotalSent, res.TotalReceived
	r.Latency = report.FromHistogram(res.Latency, true)
	if openLoop {
		u := report.FromHistogram(res.Uncorrected, true)
		r.Uncorrected = &u
	}
	r.Conns = report.Conns{
		Established: res.Established,
		Failed:      res.Failed,
		FailedBy:    res.ConnectErrors,
		RampUpS:     res.RampUp.Seconds(),
		Reconnects:  res.Reconnects,
		ServerGone:  res.ServerGone,
	}
	if res.Elapsed > 0 {
		r.Conns.NewConnsPerSec = float64(res.Reconnects) / res.Elapsed.Seconds()
	}
	if res.ConnectLatency != nil && res.ConnectLatency.TotalCount() > 0 {
		r.Conns.ConnectP50us = float64(res.ConnectLatency.ValueAtQuantile(50))
		r.Conns.ConnectP99us = float64(res.ConnectLatency.ValueAtQuantile(99))
	}
	r.VerifyFailures = res.VerifyFailures
	// The whole run contains the window, so the window's count is a floor for the total even
	// from an engine that does not count the rest of the run.
	r.VerifyFailuresTotal = max(res.VerifyFailuresTotal, res.VerifyFailures)
	r.Incomplete = res.Incomplete
	r.ConnsEchoed = res.ConnsEchoed
	r.KernelTimed = res.KernelTimed
	if h := res.ScheduleLag; openLoop && h != nil {
		r.ScheduleLag = report.LagFromHistogram(h)
		r.MeterLimited = report.JudgeMeter(r.ScheduleLag, r.Latency)
	}
	if udp {
		r.UDP = &report.UDPCounts{
			Sent: res.DatagramsSent, Echoed: res.DatagramsEchoed, TimedOut: res.TimedOut,
			Late: res.Late, Lost: res.Lost, LossPct: res.LossPct(),
			Duplicated: res.Duplicated, Reordered: res.Reordered, Corrupted: res.Corrupted,
			Unmatched: res.Unmatched, SentTotal: res.TotalDatagramsSent, ReceivedTotal: res.TotalDatagramsReceived,
		}
	}
	r.IOErrors = res.IOErrors
	for _, s := range res.PerSecond {
		r.PerSecond = append(r.PerSecond, report.Second{Messages: s.Messages, Bytes: s.Bytes, P99us: s.P99us})
	}
	return r
}

// AddHists merges one run's histograms into h, for the summary's percentiles over all runs.
func AddHists(h *report.Hists, res *loadgen.Result) {
	if res == nil {
		return
	}
	if h.Latency == nil {
		h.Latency, h.Connect = loadgen.NewHistogram(), loadgen.NewHistogram()
	}
	if res.Latency != nil {
		h.Latency.Merge(res.Latency)
	}
	if res.ConnectLatency != nil {
		h.Connect.Merge(res.ConnectLatency)
	}
	if res.ScheduleLag != nil {
		// The engine keeps it only in open loop, so it stays nil in closed loop, as it must.
		if h.ScheduleLag == nil {
			h.ScheduleLag = loadgen.NewHistogram()
		}
		h.ScheduleLag.Merge(res.ScheduleLag)
	}
}
