package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for a reader: each run, then the summary when there were several.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{label}, args...)...)
	}
	set := r.Settings
	target := set.Addr
	if set.Model != "" {
		target = fmt.Sprintf("model %s at %s", set.Model, set.Addr)
	}
	loop := "closed loop"
	if set.Rate > 0 {
		loop = fmt.Sprintf("open loop %d msgs/s", set.Rate)
	}
	conns := fmt.Sprintf("%d conns", set.Conns)
	if set.UDP {
		conns = fmt.Sprintf("UDP, %d flows, timeout %gms", set.Conns, set.UDPTimeoutMs)
	}
	fmt.Fprintf(tw, "echobench: %s, %s, sizes %v, pipeline %d, %s, %gs + %gs warmup\n",
		target, conns, set.Sizes, set.Pipeline, loop, set.DurationS, set.WarmupS)
	if len(set.ServerArgs) > 0 {
		fmt.Fprintf(tw, "server flags: %s\n", strings.Join(set.ServerArgs, " "))
	}
	if set.Sources > 0 {
		fmt.Fprintf(tw, "sources: 127.0.0.2-127.0.0.%d\n", 1+min(set.Sources, set.Conns))
	}
	p := r.Env.Pinning
	switch {
	case p.Enabled && p.ServerCPUs != "":
		fmt.Fprintf(tw, "pinning: server CPUs %s (%d/%d threads checked), echobench CPUs %s\n",
			p.ServerCPUs, p.ServerThreadsPinned, p.ServerThreads, p.ClientCPUs)
	case p.Enabled:
		fmt.Fprintf(tw, "pinning: echobench CPUs %s; %s\n", p.ClientCPUs, p.Reason)
	default:
		fmt.Fprintf(tw, "pinning: off (%s)\n", p.Reason)
	}
	for _, run := range r.Runs {
		if len(r.Runs) > 1 {
			fmt.Fprintf(tw, "run %d of %d\n", run.Index+1, len(r.Runs))
		}
		writeRun(row, run)
	}
	if len(r.Runs) > 1 {
		s := r.Summary
		fmt.Fprintf(tw, "summary of %d runs\n", s.Runs)
		row("msgs/s", "%.0f ± %.0f (stddev), 95%% CI %.0f .. %.0f", s.MsgsPerSec, s.MsgsPerSecStddev, s.MsgsPerSecCI95Low, s.MsgsPerSecCI95High)
		row("MB/s", "%.2f", s.MBPerSec)
		row("latency µs", "p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f (all runs merged)", s.LatencyP50us, s.LatencyP99us, s.LatencyP999us, s.LatencyMaxUs)
		// A summary without server figures (merged agents that could not see the server, or whose
		// views of it could not be combined) prints none: zeros would read as a server that cost
		// nothing. A server that was accounted at all had a resident set.
		if s.ServerPeakRSSBytes > 0 || s.ServerCPUS > 0 {
			row("server CPU", "%.2fs (%.0f%% of window, %.2f µs per message), peak RSS %s, peak threads %d, processes %d", s.ServerCPUS, s.ServerCPUPct, s.ServerCPUPerMsgUs, bytesText(s.ServerPeakRSSBytes), s.ServerPeakThreads, s.ServerProcesses)
		}
		row("echobench CPU", "%.2fs (%.0f%% of window)", s.ClientCPUS, s.ClientCPUPct)
		if m := s.MeterLimited; m != nil {
			row("METER-LIMITED", "%s (all runs merged)", meterText(m, s.HostLimited))
		}
		if h := s.HostLimited; h != nil {
			row("HOST-LIMITED", "%s (the most stolen run)", h.Text())
		}
		if u := s.UDP; u != nil {
			row("datagrams", "%d sent in the windows, %d lost (%.3f%%), %d timed out (%d late), %d duplicated, %d reordered, %d corrupted",
				u.Sent, u.Lost, u.LossPct, u.TimedOut, u.Late, u.Duplicated, u.Reordered, u.Corrupted)
		}
		row("verify failures", "%d in the windows, %d in the whole runs", s.VerifyFailures, s.VerifyFailuresTotal)
		if s.Incomplete > 0 {
			row("incomplete", "%d messages", s.Incomplete)
		}
	}
	if sv := r.Server; sv != nil {
		fmt.Fprintf(tw, "server, once for all agents, over the merged window\n")
		writeServer(row, sv)
	}
	tw.Flush()
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
	}
}

func writeRun(row func(string, string, ...any), run Run) {
	row("throughput", "%.0f msgs/s, %.2f MB/s (%d msgs in %.2fs)", run.MsgsPerSec, run.MBPerSec, run.Messages, run.ElapsedS)
	l := run.Latency
	if run.Uncorrected != nil {
		u := run.Uncorrected
		row("latency µs", "corrected      p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  p99.99 %.0f  max %.0f", l.P50us, l.P90us, l.P99us, l.P999us, l.P9999us, l.MaxUs)
		row("", "uncorrected    p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  p99.99 %.0f  max %.0f", u.P50us, u.P90us, u.P99us, u.P999us, u.P9999us, u.MaxUs)
	} else {
		row("latency µs", "p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  p99.99 %.0f  max %.0f", l.P50us, l.P90us, l.P99us, l.P999us, l.P9999us, l.MaxUs)
	}
	if u := run.UDP; u != nil {
		writeUDP(row, u)
	}
	c := run.Conns
	if run.UDP != nil {
		row("flows", "%d opened, %d failed%s; %d got an echo in the window", c.Established, c.Failed, countsText(c.FailedBy), run.ConnsEchoed)
	} else {
		row("connections", "%d established, %d failed%s, ramp-up %.3fs; %d got an echo in the window", c.Established, c.Failed, countsText(c.FailedBy), c.RampUpS, run.ConnsEchoed)
	}
	if c.Reconnects > 0 {
		row("reconnect", "%.0f new conns/s, connect p50 %.0f µs  p99 %.0f µs", c.NewConnsPerSec, c.ConnectP50us, c.ConnectP99us)
	}
	if run.VerifyFailuresTotal > 0 {
		row("verify failures", "%d in the window, %d in the whole run: THE SERVER ECHOED WRONG BYTES", run.VerifyFailures, run.VerifyFailuresTotal)
	} else {
		row("verify failures", "0 in the whole run")
	}
	if run.Incomplete > 0 {
		row("incomplete", "%d messages due in the window had not completed when it ended", run.Incomplete)
	}
	if sl := run.ScheduleLag; sl != nil && sl.Count == 0 {
		row("schedule lag", "no samples: no send had room in its window when it came due (the server was behind the schedule throughout, or the client was saturated), so echobench's own lateness was not measured")
	} else if sl != nil {
		row("schedule lag µs", "p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f (echobench's own lateness; should stay near 0)", sl.P50us, sl.P99us, sl.P999us, sl.MaxUs)
	}
	if m := run.MeterLimited; m != nil {
		row("METER-LIMITED", "%s", meterText(m, run.HostLimited))
	}
	if t := stealText(run.Client, run.Server); t != "" {
		row("host steal", "%s", t)
	}
	if h := run.HostLimited; h != nil {
		row("HOST-LIMITED", "%s: sends and echoes due then waited for it, so the latency tails are partly the host's", h.Text())
	}
	if len(run.IOErrors) > 0 {
		row("I/O errors", "%s", strings.TrimPrefix(countsText(run.IOErrors), " "))
	}
	if sv := run.Server; sv != nil {
		writeServer(row, sv)
	}
	cl := run.Client
	row("echobench CPU", "%.2fs user + %.2fs sys = %.2fs; %.0f%% of a core over the window, on %d core(s)", cl.UserS, cl.SysS, cl.CPUS, cl.CPUPct, cl.Cores)
	if sc := run.ServerCounts; sc != nil && run.UDP == nil { // a UDP server accepts nothing; its datagrams are in the check below
		rejected := ""
		if sc.Rejected > 0 {
			rejected = " (closed at once, unserved: see the server's log, e.g. select's fd ceiling)"
		}
		row("server counted", "%d connections served, %d rejected%s", sc.Accepted, sc.Rejected, rejected)
	}
	row("echobench bytes", "%d sent, %d received over the whole run", run.BytesSentTotal, run.BytesReceivedTotal)
	if bc := run.ByteCheck; bc != nil && bc.UDP != nil {
		writeUDPByteCheck(row, bc)
	} else if bc != nil {
		row("byte check", "server read %d vs echobench sent %d (%+.3f%%); server wrote %d vs echobench received %d (%+.3f%%); %s",
			bc.ServerIn, bc.ClientSent, bc.InDiffPct, bc.ServerOut, bc.ClientReceived, bc.OutDiffPct, byteSourceText(bc.Source))
	}
	if run.Error != "" {
		row("error", "%s", run.Error)
	}
}

// writeServer prints what the server's tree cost: over the whole run, and in the window, where
// the per-message figure is.
func writeServer(row func(string, string, ...any), sv *ServerAccounting) {
	row("server CPU", "%.2fs user + %.2fs sys = %.2fs; in the window %.2fs user + %.2fs sys, %.0f%% of a core, %.2f µs per message%s",
		sv.UserS, sv.SysS, sv.CPUS, sv.WindowUserS, sv.WindowSysS, sv.CPUPct, sv.CPUPerMsgUs, serverSourceText(sv.Source))
	row("server memory", "peak RSS %s (tree sum), root's own peak %s, peak threads %d, processes %d (%d samples)",
		bytesText(sv.PeakRSSBytes), bytesText(sv.RootHWMBytes), sv.PeakThreads, sv.PeakProcesses, sv.Samples)
	if sv.CtxSource != "" {
		row("server ctx switches", "%d voluntary, %d involuntary (%s)", sv.CtxVoluntary, sv.CtxInvolunt, ctxSourceText(sv.CtxSource))
	}
}

func serverSourceText(s string) string {
	if s == "stats" {
		return " (the server's own snapshots, from its stats port)"
	}
	return ""
}

// writeUDP prints a UDP run's datagram accounting.
func writeUDP(row func(string, string, ...any), u *UDPCounts) {
	row("datagrams", "%d sent in the window: %d echoed, %d timed out (%d of them late), %d lost: %.3f%% loss", u.Sent, u.Echoed, u.TimedOut, u.Late, u.Lost, u.LossPct)
	row("wrong echoes", "%d duplicated, %d reordered, %d corrupted (arrived in the window)", u.Duplicated, u.Reordered, u.Corrupted)
	if u.Unmatched {
		row("note", "sizes below the 12-byte datagram header: echoes were matched in arrival order and checked by length alone, so duplicated, reordered and late cannot be seen (a late echo or a duplicate answers the next datagram in flight)")
	}
}

// writeUDPByteCheck prints a UDP run's check against the server's own datagram counters.
func writeUDPByteCheck(row func(string, string, ...any), bc *ByteCheck) {
	u := bc.UDP
	verdict := "holds"
	if !u.Consistent {
		verdict = "DOES NOT HOLD: one side's counts are wrong, or the server sent what nobody asked for"
	}
	row("datagram check", "echobench sent %d, the server read %d (lost on the way in %d), dropped %d, sent %d; echobench read %d (lost on the way back %d); %s",
		u.ClientSent, u.ServerIn, u.LostInbound, u.ServerDropped, u.ServerOut, u.ClientReceived, u.LostReturn, byteSourceText(bc.Source))
	row("", "under loss the counts cannot be equal: the check is server read ≤ echobench sent and server sent ≥ echobench read, in datagrams and bytes (%d/%d bytes in, %d/%d out): %s",
		bc.ServerIn, bc.ClientSent, bc.ServerOut, bc.ClientReceived, verdict)
}

// meterText is the meter-limited flag with what to do about it; h is the same run's (or runs')
// HostLimited, for which more CPU or workers would not help.
func meterText(m *MeterLimited, h *HostLimited) string {
	advice := "give echobench more CPU or -workers, or lower -rate"
	if h != nil && h.ClientPct >= StealSharePct {
		advice = fmt.Sprintf("the hypervisor stole %.1f%% of echobench's CPUs in the window (HOST-LIMITED), lateness no client can avoid: rerun when the host is quieter", h.ClientPct)
	}
	return fmt.Sprintf("%s, above the %.0f%% that makes it meter-limited: that latency is partly echobench's own lateness, not the server's; %s", m.Text(), MeterShare*100, advice)
}

func byteSourceText(s string) string {
	switch s {
	case "exit":
		return "the server's own final count"
	case "sigusr1":
		return "the server's own count"
	case "stats":
		return "the server's own counts, from its stats port, over the run"
	case "proc-io":
		return "the kernel's rchar/wchar of the server tree (other IO counts too; send/recv-family calls do not)"
	}
	return s
}

func ctxSourceText(s string) string {
	switch s {
	case "wait4":
		return "server lifetime, from wait4"
	case "threads":
		return "live threads at the end"
	}
	return s
}

func countsText(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
