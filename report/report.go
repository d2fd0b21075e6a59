// Package report is the shape of echobench's results: the JSON file written with -o and the
// summary table printed on stdout. It holds the types, the summary derived from the runs and
// the table, and nothing of the engine that produced them, so that the harness reads a result
// without linking the load generator: filling a Run from a load is package measure's job.
//
// The JSON field names are a contract: `make bench` and the results/ tooling read them. A field
// keeps its name and meaning once released; a change of meaning gets a new name and a new Schema.
// Units are in the names: _us microseconds, _s seconds, _bytes bytes, _pct percent.
//
// The fields a comparison across models needs are all in Summary, the same whether the cell ran
// once or -repeat N times; Runs holds each repetition in full.
package report

import (
	"time"

	"echobench/server"
)

// Schema is the version of this layout.
const Schema = 1

// Report is one echobench invocation: one cell (model × load shape), run Settings.Repeat times.
type Report struct {
	Schema   int      `json:"schema"`
	Settings Settings `json:"settings"`
	Env      Env      `json:"env"`
	Runs     []Run    `json:"runs"`
	Summary  Summary  `json:"summary"`
	// Error is why the invocation failed (server died, interrupted, ...); the results above are
	// then partial. Empty on success.
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Knee is the -knee search: the highest open-loop rate whose corrected p99 held the bound,
	// and every probe that found it. Runs and Summary are then those of the knee's own probe.
	Knee *Knee `json:"knee,omitempty"`
	// HDR is the summary's histograms, encoded so that reports merge exactly (merge.go).
	HDR *HDR `json:"hdr,omitempty"`
	// Agents, in a report that Merge made, is each agent's own summary, in the order given.
	Agents []Summary `json:"agents,omitempty"`
	// Server, in a report that Merge or -procs made, is the server's cost over the merged window
	// (the earliest agent's window open to the latest one's close), accounted once for all the
	// agents: by -procs' own sampling of the server tree, or from the server's snapshots that the
	// agents fetched from its stats port. nil when neither was possible; the runs' own Server
	// is then each agent's view of the whole server, whatever else loaded it.
	Server *ServerAccounting `json:"server,omitempty"`
}

// Knee is the result of a -knee search.
type Knee struct {
	BoundUs float64 `json:"bound_us"` // the corrected-p99 bound searched against
	// RateMsgsPerS is the highest probed rate that held the bound; 0 if even the lowest did not.
	RateMsgsPerS float64     `json:"rate_msgs_per_s"`
	Probes       []KneeProbe `json:"probes"` // in the order they ran
	// Note says why the search stopped early (budget spent, top held, no probe held, a probe
	// failed) and whether a meter-limited probe decided it; empty when it converged.
	Note string `json:"note,omitempty"`
	// MeterLimited is set when the knee's own probe was meter-limited (KneeProbe.MeterLimited):
	// its p99 is then partly echobench's, and the knee a floor for the server.
	MeterLimited bool `json:"meter_limited,omitempty"`
	// SaturationMsgsPerS is the closed-loop probe's throughput, the top of the bracket; 0 when
	// -knee-max gave the top instead.
	SaturationMsgsPerS float64 `json:"saturation_msgs_per_s,omitempty"`
	Tolerance          float64 `json:"tolerance"`    // relative width of the final bracket, 0.05 = 5 %
	ProbeBudget        int     `json:"probe_budget"` // most open-loop probes allowed
}

// KneeProbe is one open-loop run of a knee search.
type KneeProbe struct {
	Rate         float64 `json:"rate_msgs_per_s"` // offered
	MsgsPerSec   float64 `json:"msgs_per_s"`      // achieved
	P99us        float64 `json:"latency_p99_us"`  // coordinated-omission corrected
	Held         bool    `json:"held"`            // p99 within the bound and the rate achieved
	MeterLimited bool    `json:"meter_limited,omitempty"`
	HostLimited  bool    `json:"host_limited,omitempty"` // Run.HostLimited: the hypervisor stole from either side
	DurationS    float64 `json:"duration_s"`
	Incomplete   uint64  `json:"incomplete"`    // messages due in the window that had not completed
	Why          string  `json:"why,omitempty"` // why it did not hold
}

// Second is one second of the measured window: messages and bytes echoed in it and its p99
// latency.
type Second struct {
	Messages uint64  `json:"messages"`
	Bytes    uint64  `json:"bytes"`
	P99us    float64 `json:"p99_us"`
}

// Settings are the flags the cell ran with.
type Settings struct {
	Model        string `json:"model,omitempty"` // empty with -addr
	Addr         string `json:"addr"`            // target; with -model, the child's address (of the last run)
	ServerBinary string `json:"server_binary,omitempty"`
	ServerSelf   bool   `json:"server_self_exec,omitempty"` // echobench re-executed itself as the server
	// ServerArgs are the server.Config flags the -model child got (server.Config.Args); Loops,
	// Pool and Outbound repeat three of them for readers of schema 1.
	ServerArgs  []string `json:"server_args,omitempty"`
	Loops       int      `json:"loops,omitempty"`
	Pool        int      `json:"pool,omitempty"`
	Outbound    int      `json:"outbound,omitempty"`
	Conns       int      `json:"conns"`
	ConnectRate int      `json:"connect_rate"`
	DurationS   float64  `json:"duration_s"`
	WarmupS     float64  `json:"warmup_s"`
	Sizes       []int    `json:"sizes"`
	Pipeline    int      `json:"pipeline"`
	// WakeOnEcho: the open-loop engine woke for every echo and timed it at the read, instead of
	// harvest mode (loadgen/README.md, "Harvest mode").
	WakeOnEcho bool `json:"wake_on_echo,omitempty"`
	Rate       int  `json:"rate"`               // open-loop messages/s; 0 = closed loop
	Messages   int  `json:"messages,omitempty"` // the window ended after this many echoes; 0 = by duration
	Verify     bool `json:"verify"`
	Frame      bool `json:"frame"`
	Reconnect  int  `json:"reconnect"`
	Workers    int  `json:"workers"`
	Repeat     int  `json:"repeat"`
	// Sources is how many source addresses (127.0.0.2 upward) the connections were spread over
	// when the target is an IPv4 loopback address; 0 means the kernel chose (always 127.0.0.1).
	Sources int `json:"sources"`
	// StartAt is -start-at as given: the instant the agent was told to start connecting at.
	StartAt string `json:"start_at,omitempty"`
	// UDP: the load was UDP datagrams, Conns flows of them, each datagram unanswered for
	// UDPTimeoutMs counted lost (loadgen/README.md, "UDP").
	UDP          bool    `json:"udp,omitempty"`
	UDPTimeoutMs float64 `json:"udp_timeout_ms,omitempty"`
}

// Env is where the cell ran.
type Env struct {
	Start       string  `json:"start"` // RFC 3339, UTC
	Kernel      string  `json:"kernel"`
	GoVersion   string  `json:"go_version"`
	CPUModel    string  `json:"cpu_model"`
	Cores       int     `json:"cores"` // CPUs online (runtime.NumCPU)
	GOMAXPROCS  int     `json:"gomaxprocs"`
	Commit      string  `json:"commit,omitempty"` // git HEAD of the checkout, if run inside one
	NoFileLimit uint64  `json:"nofile_limit"`     // RLIMIT_NOFILE after raising it
	Pinning     Pinning `json:"pinning"`
}

// Pinning says where the server and echobench ran.
type Pinning struct {
	Enabled    bool   `json:"enabled"`
	Reason     string `json:"reason,omitempty"` // why pinning is off
	ServerCPUs string `json:"server_cpus,omitempty"`
	ClientCPUs string `json:"client_cpus,omitempty"`
	// ServerThreadsPinned of ServerThreads were on ServerCPUs when checked after start.
	ServerThreadsPinned int `json:"server_threads_pinned,omitempty"`
	ServerThreads       int `json:"server_threads,omitempty"`
	ClientThreadsPinned int `json:"client_threads_pinned,omitempty"`
}

// Latency is a latency distribution in microseconds.
type Latency struct {
	Count   int64   `json:"count"`
	MeanUs  float64 `json:"mean_us"`
	P50us   float64 `json:"p50_us"`
	P90us   float64 `json:"p90_us"`
	P99us   float64 `json:"p99_us"`
	P999us  float64 `json:"p99_9_us"`
	P9999us float64 `json:"p99_99_us"`
	MaxUs   float64 `json:"max_us"`
	// Spectrum is HdrHistogram's cumulative distribution, halving the distance to 100% at each
	// step: the shape of the tail, for plotting.
	Spectrum []Percentile `json:"spectrum,omitempty"`
}

// Percentile is one point of a Spectrum.
type Percentile struct {
	Percentile float64 `json:"percentile"`
	ValueUs    int64   `json:"value_us"`
	Count      int64   `json:"count"` // messages at or below ValueUs
}

// Run is one repetition of the cell.
type Run struct {
	Index      int     `json:"index"`
	Error      string  `json:"error,omitempty"`
	MsgsPerSec float64 `json:"msgs_per_s"`
	MBPerSec   float64 `json:"mb_per_s"` // echoed payload, 10^6 bytes/s
	Messages   uint64  `json:"messages"`
	Bytes      uint64  `json:"bytes"`
	ElapsedS   float64 `json:"elapsed_s"` // measured window actually run
	// WindowStart and WindowEnd are the measured window in wall-clock time (RFC 3339, ns), for
	// merging agents' reports: Merge reports how far their windows overlap.
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
	// WindowLateS is how much later than -start-at plus the warmup the window opened (s).
	WindowLateS float64 `json:"window_late_s,omitempty"`
	// BytesSentTotal and BytesReceivedTotal are every byte echobench wrote to and read from the
	// server over the whole run (ramp-up, warmup, window and drain; frame headers included),
	// always present, so a server's own counters can be checked against them: a server that
	// echoed everything read and wrote exactly these over the run.
	BytesSentTotal     uint64 `json:"bytes_sent_total"`
	BytesReceivedTotal uint64 `json:"bytes_received_total"`
	// Latency is per message. In open loop it is from the intended send time (coordinated
	// omission corrected) and Uncorrected is from the actual send; in closed loop there is only
	// Latency.
	Latency        Latency  `json:"latency"`
	Uncorrected    *Latency `json:"latency_uncorrected,omitempty"`
	Conns          Conns    `json:"conns"`
	VerifyFailures uint64   `json:"verify_failures"` // in the measured window
	// VerifyFailuresTotal counts wrong echoes over the whole run, ramp-up, warmup and drain
	// included: any one of them means the server is broken and fails the invocation.
	VerifyFailuresTotal uint64 `json:"verify_failures_total"`
	// Incomplete counts messages due in the window (sent, or scheduled in open loop) that had
	// not completed when it ended: a stalled server shows here even if it completes nothing.
	Incomplete uint64 `json:"incomplete"`
	// ConnsEchoed is how many connections completed at least one echo in the window; fewer than
	// established means some were connected but never served (a pool's backlog).
	ConnsEchoed int `json:"conns_echoed"`
	// KernelTimed counts the run's completions (warmup and drain included) timed by the kernel's
	// receive timestamp rather than at their read: harvest mode (loadgen/README.md).
	KernelTimed uint64 `json:"kernel_timed,omitempty"`
	// ScheduleLag (open loop only) is how late echobench itself got round to sends it was
	// free to make. Far from zero, the client is part of what Latency measures.
	ScheduleLag *ScheduleLag `json:"schedule_lag,omitempty"`
	// MeterLimited (open loop only) is set when that lag is a material share of a reported
	// latency percentile (JudgeMeter): the percentile then partly measures echobench.
	MeterLimited *MeterLimited `json:"meter_limited,omitempty"`
	// HostLimited is set when the hypervisor took at least StealSharePct of either side's CPUs
	// in the window (JudgeHost): the latency tails are then partly the host's.
	HostLimited *HostLimited      `json:"host_limited,omitempty"`
	IOErrors    map[string]int    `json:"io_errors,omitempty"`
	PerSecond   []Second          `json:"per_second"`
	Server      *ServerAccounting `json:"server,omitempty"` // nil when the server is not ours to watch
	Client      ClientAccounting  `json:"client"`
	ByteCheck   *ByteCheck        `json:"byte_check,omitempty"`
	// UDP holds a UDP run's datagram accounting; nil for TCP.
	UDP *UDPCounts `json:"udp,omitempty"`
	// ServerCounts is the server's own final count of connections and bytes (its "stats" line),
	// when echobench started it. Rejected connections were accepted and closed at once without
	// being served: select's fd ceiling, a thread ceiling, EMFILE.
	ServerCounts *server.Stats `json:"server_counts,omitempty"`
}

// UDPCounts is a UDP run's datagram accounting (loadgen.Result says what each count counts). The
// first five follow the datagrams sent in the window to their end, drain included:
// datagrams_sent = datagrams_echoed + timed_out + the corrupted echoes among them, and lost =
// timed_out - late. Duplicated, reordered and corrupted count echoes that arrived in the window.
type UDPCounts struct {
	Sent       uint64  `json:"datagrams_sent"`
	Echoed     uint64  `json:"datagrams_echoed"`
	TimedOut   uint64  `json:"timed_out"`
	Late       uint64  `json:"late"`
	Lost       uint64  `json:"lost"`
	LossPct    float64 `json:"loss_pct"` // lost of datagrams_sent
	Duplicated uint64  `json:"duplicated"`
	Reordered  uint64  `json:"reordered"`
	Corrupted  uint64  `json:"corrupted"`
	// Unmatched is set when a size was below the 12-byte datagram header: echoes were matched in
	// arrival order and checked by length only, so duplicated, reordered and late are blind.
	Unmatched bool `json:"unmatched,omitempty"`
	// The whole run's datagrams, for the server's datagram counters.
	SentTotal     uint64 `json:"datagrams_sent_total"`
	ReceivedTotal uint64 `json:"datagrams_received_total"`
}

// Add sums two runs' counts and recomputes the loss percentage.
func (u UDPCounts) Add(o UDPCounts) UDPCounts {
	s := UDPCounts{
		Sent: u.Sent + o.Sent, Echoed: u.Echoed + o.Echoed, TimedOut: u.TimedOut + o.TimedOut,
		Late: u.Late + o.Late, Lost: u.Lost + o.Lost, Duplicated: u.Duplicated + o.Duplicated,
		Reordered: u.Reordered + o.Reordered, Corrupted: u.Corrupted + o.Corrupted,
		Unmatched: u.Unmatched || o.Unmatched, SentTotal: u.SentTotal + o.SentTotal,
		ReceivedTotal: u.ReceivedTotal + o.ReceivedTotal,
	}
	if s.Sent > 0 {
		s.LossPct = float64(s.Lost) / float64(s.Sent) * 100
	}
	return s
}

// ScheduleLag summarises the engine's own lateness in open loop, in microseconds.
type ScheduleLag struct {
	Count int64   `json:"count"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// P999us is absent from reports written before the meter-limited flag.
	P999us float64 `json:"p99_9_us,omitempty"`
	MaxUs  float64 `json:"max_us"`
}

// Conns is what happened to connections.
type Conns struct {
	Established int            `json:"established"` // with -reconnect: every successful connect
	Failed      int            `json:"failed"`
	FailedBy    map[string]int `json:"failed_by,omitempty"` // by errno name
	RampUpS     float64        `json:"ramp_up_s"`           // first connect to last established
	Reconnects  uint64         `json:"reconnects"`
	// NewConnsPerSec is Reconnects over the measured window (with -reconnect).
	NewConnsPerSec float64 `json:"new_conns_per_s"`
	ConnectP50us   float64 `json:"connect_p50_us"`
	ConnectP99us   float64 `json:"connect_p99_us"`
	ServerGone     bool    `json:"server_gone"` // every connection failed mid-run
}

// ServerAccounting is what the server's process tree cost, read from /proc: by echobench itself,
// or by the server, which reports it in its snapshots (Source).
type ServerAccounting struct {
	PID int `json:"pid"`
	// Source is who read the tree: "proc", echobench from /proc (-model, -server-pid); "stats",
	// the server itself, in the snapshots echobench fetched from its stats port (-server-stats).
	// Empty in reports made before it: "proc".
	Source string `json:"source,omitempty"`
	// UserS and SysS cover the whole load run (ramp-up, warmup, window, teardown); in a merge of
	// the agents' snapshots, which cover only the windows, they are the window's.
	UserS float64 `json:"cpu_user_s"`
	SysS  float64 `json:"cpu_sys_s"`
	CPUS  float64 `json:"cpu_s"` // user + sys
	// WindowCPUS is the CPU spent during the measured window and CPUPct that over the window's
	// wall time: 100 is one core busy. The window is the one the engine reports it measured
	// (its start and end in wall-clock time), and the CPU at each end is interpolated between
	// the samples around it. WindowUserS and WindowSysS split it.
	WindowCPUS  float64 `json:"window_cpu_s"`
	WindowUserS float64 `json:"window_cpu_user_s"`
	WindowSysS  float64 `json:"window_cpu_sys_s"`
	CPUPct      float64 `json:"cpu_pct_of_window"`
	// CPUPerMsgUs is WindowCPUS over the messages echoed in the window, in µs: what one echo
	// cost the server. Only the agents' merge knows every message the server echoed; one agent
	// among several divides the whole server's CPU by its own share.
	CPUPerMsgUs float64 `json:"window_cpu_us_per_msg"`
	// WindowOpen and WindowClose (Source "stats") are the server's snapshots at the window's
	// ends, interpolated between the polls around each, for Merge.
	WindowOpen    *ServerSnapshot `json:"window_open,omitempty"`
	WindowClose   *ServerSnapshot `json:"window_close,omitempty"`
	PeakRSSBytes  uint64          `json:"peak_rss_bytes"`  // VmRSS summed over the tree, largest sample
	RootHWMBytes  uint64          `json:"root_hwm_bytes"`  // the root process's own VmHWM
	PeakThreads   int             `json:"peak_threads"`    // summed over the tree, largest sample
	PeakProcesses int             `json:"peak_processes"`  // processes counted in the tree, largest sample
	Samples       int             `json:"samples"`         // how many /proc samples the peaks come from
	CtxVoluntary  uint64          `json:"ctx_voluntary"`   // see CtxSource
	CtxInvolunt   uint64          `json:"ctx_involuntary"` // see CtxSource
	// CtxSource says what the context switches cover: "wait4" is the server's whole lifetime
	// (exact, exited threads and reaped children included); "threads" is the live threads at
	// the end of the run (an external server we cannot reap).
	CtxSource string `json:"ctx_source"`
	// LifetimeCPUS is wait4's user+sys for the server's whole life, start-up and shutdown
	// included, when echobench started it.
	LifetimeCPUS float64 `json:"lifetime_cpu_s,omitempty"`
	Exit         string  `json:"exit,omitempty"`
	// StealPct is the share of the wall time of the server's CPUs (its pinning, else its
	// affinity) over the window that the hypervisor ran something else (HostLimited); nil when
	// not read, as for a server known by its stats port alone.
	StealPct *float64 `json:"steal_pct_of_window,omitempty"`
}

// ServerSnapshot is one of the server's own snapshots (its stats line, internal/child.Snapshot)
// as a report keeps it: the cumulative figures at one instant of the server's clock, which is the
// one clock every agent of a merge shares.
type ServerSnapshot struct {
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"` // with PID, which server this is
	Time     time.Time `json:"time"`
	UserS    float64   `json:"cpu_user_s"`
	SysS     float64   `json:"cpu_sys_s"`
	BytesIn  uint64    `json:"bytes_in"`
	BytesOut uint64    `json:"bytes_out"`
}

// ClientAccounting is what echobench itself cost (getrusage RUSAGE_SELF), over the load run.
//
// CPUS, and the server's, are exact: the scheduler's own runtime, without the time a hypervisor
// stole. The split into user and system is not. A kernel built with tick-based accounting (the
// usual build, CONFIG_TICK_CPU_ACCOUNTING) divides that runtime in the ratio of the timer ticks
// that found the thread in user and in kernel mode, a few hundred a second; an event loop that
// wakes on timers of its own is not sampled at random by them, so the split can be off by several
// times for a side that spends a tenth of its time in user mode, as the engine does. The split is
// printed as the kernel gives it; results/2026-12-02-steal/ compares it with perf's sampling.
type ClientAccounting struct {
	UserS      float64 `json:"cpu_user_s"`
	SysS       float64 `json:"cpu_sys_s"`
	CPUS       float64 `json:"cpu_s"`
	WindowCPUS float64 `json:"window_cpu_s"`
	CPUPct     float64 `json:"cpu_pct_of_window"` // 100 = one core
	Cores      int     `json:"cores"`             // cores echobench may use (its pinning)
	// EngineThreads is how many engine event loops ran: echobench cannot use more cores than
	// that, so saturation is judged on the smaller of the two.
	EngineThreads int `json:"engine_threads"`
	// Saturated is set when echobench used ≥90% of min(Cores, EngineThreads) in the window or,
	// unpinned, at least as much CPU as the server it shares the CPUs with: the meter, not the
	// server alone, then limited the throughput and the figures are a floor for the server.
	Saturated bool `json:"saturated"`
	// BothSaturated is set when echobench and the server were both at ≥90% of their cores.
	// Over loopback each side's write runs the other's receive path in the kernel, so the work
	// is shared and the figure is the pair's limit rather than the server's.
	BothSaturated bool `json:"both_saturated"`
	// StealPct is the share of the wall time of echobench's CPUs (its pinning, else its
	// affinity) over the window that the hypervisor ran something else (HostLimited); nil when
	// /proc/stat could not be read.
	StealPct *float64 `json:"steal_pct_of_window,omitempty"`
}

// ByteCheck compares echobench's byte counts with the server's, over the whole run: the
// server's own counters when echobench started it, else the kernel's counters of the server's
// process tree (-server-pid), which also count other IO and miss send(2)-family calls
// (procstat.IO says which), so only a close match there vouches for the server.
type ByteCheck struct {
	ClientSent     uint64  `json:"client_sent"`
	ClientReceived uint64  `json:"client_received"`
	ServerIn       uint64  `json:"server_in"`
	ServerOut      uint64  `json:"server_out"`
	InDiffPct      float64 `json:"in_diff_pct"`  // (server_in - client_sent) / client_sent
	OutDiffPct     float64 `json:"out_diff_pct"` // (server_out - client_received) / client_received
	// Source is where ServerIn and ServerOut come from: "exit" (the server's final stats line),
	// "sigusr1" (a stats line asked for), or "proc-io" (the rchar and wchar deltas of the server
	// tree's /proc/PID/io over the load run, for an external server given by -server-pid).
	Source string `json:"source"`
	// UDP is the datagram side of the check for a UDP run against the server's own counters.
	// Under loss the byte counts cannot agree, so the diffs above are expected to be negative
	// there; what must hold is UDPByteCheck.Consistent.
	UDP *UDPByteCheck `json:"udp,omitempty"`
}

// UDPByteCheck compares a UDP run's datagram counts with the server's. A datagram can be lost
// on the way in (echobench sent it, the server never read it: its socket's receive buffer was
// full), at the server (read, never answered: Dropped, its reply queue was full), or on the way
// back (the server sent it, echobench never read it: echobench's receive buffer was full, or the
// echo came after its socket closed). Nothing can arrive that was not sent, so the server read at
// most what echobench sent and echobench read at most what the server sent.
type UDPByteCheck struct {
	ClientSent     uint64 `json:"client_datagrams_sent"`
	ClientReceived uint64 `json:"client_datagrams_received"`
	ServerIn       uint64 `json:"server_datagrams_in"`
	ServerOut      uint64 `json:"server_datagrams_out"`
	ServerDropped  uint64 `json:"server_dropped"`
	LostInbound    uint64 `json:"lost_inbound"` // client_datagrams_sent - server_datagrams_in
	LostReturn     uint64 `json:"lost_return"`  // server_datagrams_out - client_datagrams_received
	// Consistent: server_in ≤ client_sent and server_out ≥ client_received, in datagrams and in
	// bytes. False means one side's counts are wrong (or the server echoed what nobody sent).
	Consistent bool `json:"consistent"`
}

// Summary is the cell in one line of fields: what `make bench` compares across models. With
// several runs, rates and CPU are means, latencies come from the merged histograms, peaks are
// maxima, connection counts are the worst run's, and failures are summed.
type Summary struct {
	Model               string  `json:"model"`
	Runs                int     `json:"runs"`
	MsgsPerSec          float64 `json:"msgs_per_s"`
	MsgsPerSecStddev    float64 `json:"msgs_per_s_stddev"`    // sample standard deviation over runs
	MsgsPerSecCI95Low   float64 `json:"msgs_per_s_ci95_low"`  // Student's t 95% interval of the mean
	MsgsPerSecCI95High  float64 `json:"msgs_per_s_ci95_high"` // (equal to the mean for one run)
	MBPerSec            float64 `json:"mb_per_s"`
	LatencyP50us        float64 `json:"latency_p50_us"`
	LatencyP99us        float64 `json:"latency_p99_us"`
	LatencyP999us       float64 `json:"latency_p99_9_us"`
	LatencyMaxUs        float64 `json:"latency_max_us"`
	ConnsEstablished    int     `json:"conns_established"`
	ConnsFailed         int     `json:"conns_failed"`
	NewConnsPerSec      float64 `json:"new_conns_per_s"`
	ConnectP50us        float64 `json:"connect_p50_us"`
	ConnectP99us        float64 `json:"connect_p99_us"`
	VerifyFailures      uint64  `json:"verify_failures"`       // in the measured windows, summed
	VerifyFailuresTotal uint64  `json:"verify_failures_total"` // over the whole runs, summed
	Incomplete          uint64  `json:"incomplete"`            // summed over runs
	ServerRejected      uint64  `json:"server_rejected"`       // connections the server closed unserved, by its own count (most of any run)
	ServerCPUS          float64 `json:"server_cpu_s"`          // user+sys over the load run
	ServerCPUPct        float64 `json:"server_cpu_pct"`
	ServerPeakRSSBytes  uint64  `json:"server_peak_rss_bytes"`
	ServerPeakThreads   int     `json:"server_peak_threads"`
	ServerProcesses     int     `json:"server_processes"` // peak processes counted in the tree
	// ServerCPUPerMsgUs is the server's window CPU over the messages of those windows, all runs
	// (or, merged, all agents) together, in µs.
	ServerCPUPerMsgUs float64 `json:"server_cpu_us_per_msg,omitempty"`
	ClientCPUS        float64 `json:"client_cpu_s"`
	ClientCPUPct      float64 `json:"client_cpu_pct"`
	ClientSaturated   bool    `json:"client_saturated"`
	BothSaturated     bool    `json:"both_saturated"` // echobench and the server both ≥90%: the pair's limit
	// MeterLimited applies JudgeMeter to the merged runs' schedule lag and latency, the same
	// histograms the percentiles above come from; nil in closed loop.
	MeterLimited *MeterLimited `json:"meter_limited,omitempty"`
	// HostLimited is the most stolen run's HostLimited (either side's larger steal); nil when no
	// run was host-limited.
	HostLimited *HostLimited `json:"host_limited,omitempty"`
	// ConnsEchoed is how many connections completed at least one echo in the window (the fewest
	// of any run): below ConnsEstablished when a pool keeps the rest in the backlog, or when
	// starting a thread or process per connection cannot keep up.
	ConnsEchoed int `json:"conns_echoed"`
	// ByteDiffPct is the largest |difference| of the byte check; in a UDP run only a difference
	// that breaks UDPByteCheck's rule counts (the server read more than was sent, or sent less
	// than was received), since loss makes the rest expected.
	ByteDiffPct float64 `json:"byte_diff_pct"`
	// ByteCheckSource is the runs' ByteCheck.Source ("" when no run had one).
	ByteCheckSource string `json:"byte_check_source,omitempty"`
	// BytesSentTotal and BytesReceivedTotal are the runs' whole-run byte counts summed: against
	// one external server, what its own counters should have moved by over this invocation.
	BytesSentTotal     uint64 `json:"bytes_sent_total"`
	BytesReceivedTotal uint64 `json:"bytes_received_total"`
	// UDP is the runs' datagram accounting summed, loss_pct over all of them; nil for TCP.
	UDP   *UDPCounts `json:"udp,omitempty"`
	Error string     `json:"error,omitempty"`
}
