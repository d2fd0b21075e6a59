package report

import (
	"math"
	"sort"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/montanaflynn/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// FromHistogram summarises a microsecond histogram; spectrum adds the cumulative distribution.
func FromHistogram(h *hdrhistogram.Histogram, spectrum bool) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	l := Latency{
		Count:   h.TotalCount(),
		MeanUs:  h.Mean(),
		P50us:   float64(h.ValueAtQuantile(50)),
		P90us:   float64(h.ValueAtQuantile(90)),
		P99us:   float64(h.ValueAtQuantile(99)),
		P999us:  float64(h.ValueAtQuantile(99.9)),
		P9999us: float64(h.ValueAtQuantile(99.99)),
		MaxUs:   float64(h.Max()),
	}
	if spectrum {
		for _, b := range h.CumulativeDistribution() {
			l.Spectrum = append(l.Spectrum, Percentile{Percentile: b.Quantile, ValueUs: b.ValueAt, Count: b.Count})
		}
	}
	return l
}

// LagFromHistogram summarises a schedule-lag histogram in microseconds.
func LagFromHistogram(h *hdrhistogram.Histogram) *ScheduleLag {
	l := &ScheduleLag{Count: h.TotalCount()}
	if l.Count > 0 {
		l.P50us = float64(h.ValueAtQuantile(50))
		l.P99us = float64(h.ValueAtQuantile(99))
		l.P999us = float64(h.ValueAtQuantile(99.9))
		l.MaxUs = float64(h.Max())
	}
	return l
}

// DiffPct is (server - client) / client in percent: 0 when both are 0, and 100 when the client
// counted nothing but the server did (JSON has no infinity; the raw counts sit beside it).
func DiffPct(server, client uint64) float64 {
	if client == 0 {
		if server == 0 {
			return 0
		}
		return 100
	}
	return (float64(server) - float64(client)) / float64(client) * 100
}

// MeanCI95 returns the mean, the sample standard deviation and the 95% confidence interval of the
// mean. With one value the deviation is 0 and the interval is the value itself.
func MeanCI95(xs []float64) (mean, stddev, low, high float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	mean, _ = stats.Mean(xs)
	if len(xs) == 1 {
		return mean, 0, mean, mean
	}
	stddev, _ = stats.StandardDeviationSample(xs)
	// Student's t at 97.5 % for n-1 degrees of freedom: the two-sided 95 % interval of a mean from
	// a handful of repetitions (bench/stats.go takes its intervals from the same distribution).
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(len(xs) - 1)}.Quantile(0.975)
	half := t * stddev / math.Sqrt(float64(len(xs)))
	return mean, stddev, mean - half, mean + half
}

// Hists are the histograms of all runs merged, for the summary's percentiles.
type Hists struct {
	Latency, Connect *hdrhistogram.Histogram
	// ScheduleLag is nil in closed loop, where there is no schedule to be late for.
	ScheduleLag *hdrhistogram.Histogram
}

// Summarize fills r.Summary from r.Runs and the merged histograms.
func (r *Report) Summarize(model string, h Hists) {
	s := Summary{Model: model, Runs: len(r.Runs), Error: r.Error}
	var rates, mbs, newConns, srvCPU, srvPct, cliCPU, cliPct []float64
	var srvWindowCPU float64
	var srvMessages uint64
	for i, run := range r.Runs {
		rates = append(rates, run.MsgsPerSec)
		mbs = append(mbs, run.MBPerSec)
		newConns = append(newConns, run.Conns.NewConnsPerSec)
		if i == 0 || run.Conns.Established < s.ConnsEstablished {
			s.ConnsEstablished = run.Conns.Established
		}
		s.ConnsFailed = max(s.ConnsFailed, run.Conns.Failed)
		s.VerifyFailures += run.VerifyFailures
		s.VerifyFailuresTotal += run.VerifyFailuresTotal
		s.Incomplete += run.Incomplete
		if i == 0 || run.ConnsEchoed < s.ConnsEchoed {
			s.ConnsEchoed = run.ConnsEchoed
		}
		if sc := run.ServerCounts; sc != nil {
			s.ServerRejected = max(s.ServerRejected, sc.Rejected)
		}
		if sv := run.Server; sv != nil {
			srvCPU = append(srvCPU, sv.CPUS)
			srvPct = append(srvPct, sv.CPUPct)
			s.ServerPeakRSSBytes = max(s.ServerPeakRSSBytes, sv.PeakRSSBytes)
			s.ServerPeakThreads = max(s.ServerPeakThreads, sv.PeakThreads)
			s.ServerProcesses = max(s.ServerProcesses, sv.PeakProcesses)
			srvWindowCPU += sv.WindowCPUS
			srvMessages += run.Messages
		}
		cliCPU = append(cliCPU, run.Client.CPUS)
		cliPct = append(cliPct, run.Client.CPUPct)
		s.ClientSaturated = s.ClientSaturated || run.Client.Saturated
		if h := run.HostLimited; h != nil && (s.HostLimited == nil || h.worst() > s.HostLimited.worst()) {
			s.HostLimited = h
		}
		s.BothSaturated = s.BothSaturated || run.Client.BothSaturated
		s.BytesSentTotal += run.BytesSentTotal
		s.BytesReceivedTotal += run.BytesReceivedTotal
		if run.UDP != nil {
			sum := run.UDP.Add(UDPCounts{})
			if s.UDP != nil {
				sum = s.UDP.Add(*run.UDP)
			}
			s.UDP = &sum
		}
		if bc := run.ByteCheck; bc != nil {
			s.ByteCheckSource = bc.Source
			diffs := []float64{bc.InDiffPct, bc.OutDiffPct}
			if bc.UDP != nil {
				// Loss makes the server read less than was sent and echobench read less than
				// the server sent; only the opposite is a discrepancy.
				diffs = []float64{max(bc.InDiffPct, 0), min(bc.OutDiffPct, 0)}
			}
			for _, d := range diffs {
				if math.Abs(d) > math.Abs(s.ByteDiffPct) {
					s.ByteDiffPct = d
				}
			}
		}
	}
	s.MsgsPerSec, s.MsgsPerSecStddev, s.MsgsPerSecCI95Low, s.MsgsPerSecCI95High = MeanCI95(rates)
	s.MBPerSec, _, _, _ = MeanCI95(mbs)
	s.NewConnsPerSec, _, _, _ = MeanCI95(newConns)
	s.ServerCPUS, _, _, _ = MeanCI95(srvCPU)
	s.ServerCPUPct, _, _, _ = MeanCI95(srvPct)
	if srvMessages > 0 {
		s.ServerCPUPerMsgUs = srvWindowCPU / float64(srvMessages) * 1e6
	}
	s.ClientCPUS, _, _, _ = MeanCI95(cliCPU)
	s.ClientCPUPct, _, _, _ = MeanCI95(cliPct)
	if h.Latency != nil && h.Latency.TotalCount() > 0 {
		s.LatencyP50us = float64(h.Latency.ValueAtQuantile(50))
		s.LatencyP99us = float64(h.Latency.ValueAtQuantile(99))
		s.LatencyP999us = float64(h.Latency.ValueAtQuantile(99.9))
		s.LatencyMaxUs = float64(h.Latency.Max())
	}
	if h.Latency != nil && h.ScheduleLag != nil {
		s.MeterLimited = JudgeMeter(LagFromHistogram(h.ScheduleLag), FromHistogram(h.Latency, false))
	}
	if h.Connect != nil && h.Connect.TotalCount() > 0 {
		s.ConnectP50us = float64(h.Connect.ValueAtQuantile(50))
		s.ConnectP99us = float64(h.Connect.ValueAtQuantile(99))
	}
	r.Summary = s
	r.HDR = encodeHDR(h)
}

// SetMergedServer puts sv, the server accounted once over a merged report's window, in r.Server
// and in the summary's server figures, replacing what Summarize made of the agents' own views of
// the server (each saw the whole server's CPU against its own share of the load). With sv nil
// the summary holds no server figures.
func (r *Report) SetMergedServer(sv *ServerAccounting) {
	r.Server = sv
	s := &r.Summary
	s.ServerCPUS, s.ServerCPUPct, s.ServerCPUPerMsgUs = 0, 0, 0
	s.ServerPeakRSSBytes, s.ServerPeakThreads, s.ServerProcesses = 0, 0, 0
	if sv == nil {
		return
	}
	s.ServerCPUS, s.ServerCPUPct, s.ServerCPUPerMsgUs = sv.CPUS, sv.CPUPct, sv.CPUPerMsgUs
	s.ServerPeakRSSBytes, s.ServerPeakThreads, s.ServerProcesses = sv.PeakRSSBytes, sv.PeakThreads, sv.PeakProcesses
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
