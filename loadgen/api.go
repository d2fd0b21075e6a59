// Package loadgen is echobench's client engine: it opens many connections to an echo server,
// drives them closed-loop or open-loop, verifies every echoed byte, and records latency in HDR
// histograms. cmd/echobench is its front end.
package loadgen

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config describes one load run.
type Config struct {
	Addr        string        // target host:port (loopback is enforced by the caller)
	Conns       int           // concurrent connections
	ConnectRate int           // new connections per second during ramp-up; 0 = as fast as possible
	Warmup      time.Duration // load runs this long before measuring starts
	// StartAt, if set, is the wall-clock instant at which the run begins to connect, and the
	// measured window opens at StartAt+Warmup (or as soon as every connection is up, if that is
	// later: Result.WindowLate says by how much), so that agents on several hosts given the same
	// StartAt measure the same window. Zero starts at once.
	StartAt   time.Time
	Duration  time.Duration // measured window after Warmup
	Sizes     []int         // message sizes in bytes, cycled message by message
	Pipeline  int           // closed loop: messages in flight per connection (1 = ping-pong)
	Rate      int           // open loop: total messages/s over all connections; 0 = closed loop
	Verify    bool          // check every echoed byte against what was sent
	Frame     bool          // length-prefixed messages with a sequence number; check boundaries and order
	Reconnect int           // >0: every connection does this many echoes, closes and connects again
	Workers   int           // engine threads or event loops; 0 = GOMAXPROCS
	// Sources, if above zero, spreads the connections over that many source addresses, 127.0.0.2
	// upward (Addr must then be an IPv4 loopback address): connection slot i binds to the
	// (i mod Sources)th before it connects. One source address caps new connections to one
	// server port at about 14,000 a second; see the README, "Source addresses". 0 leaves the
	// source to the kernel.
	Sources int
	// Messages, if above zero, ends the measured window at the Messages-th echo completed in it,
	// all connections together, so that Result.Messages is exactly Messages unless Duration ends
	// the window first. 0 = no limit.
	Messages int
	// WakeOnEcho, in open loop with Pipeline 1, wakes the engine for every echo as it arrives and
	// times the echo at its read, as the engine did before harvest mode (README.md, "Harvest
	// mode"), which is otherwise the default there: the engine then wakes for its send schedule
	// only and times each echo by the kernel's receive timestamp. For comparison; it costs the
	// client about one more wake per message. Closed loop and deeper pipelines always wake on
	// echoes.
	WakeOnEcho bool
	// UDP drives UDP instead of TCP: each of Conns is a flow, one connected UDP socket, sending
	// datagrams that carry a flow id and a sequence number (README.md, "UDP"). Pipeline is the
	// flow's window of datagrams in flight, Rate the open-loop rate over all flows. A size may be
	// 0 (an empty datagram), and at most MaxDatagramIPv4 or MaxDatagramIPv6 bytes. Frame,
	// Reconnect and Sources do not apply.
	UDP bool
	// UDPTimeout is how long a datagram may go unanswered before it counts as lost and its window
	// slot is reused; 0 = DefaultUDPTimeout.
	UDPTimeout time.Duration
	// Progress, if set, is called about once a second with the totals so far.
	Progress func(Progress)
}

// The largest UDP payloads: a datagram's 16-bit length field counts at most 65,535 bytes, less
// the 8-byte UDP header, and over IPv4 also the 20-byte IP header that the same 65,535 limit
// covers (IPv6's payload length does not count its own header). Larger sizes are refused.
const (
	MaxDatagramIPv4 = 65535 - 20 - 8
	MaxDatagramIPv6 = 65535 - 8
)

// DefaultUDPTimeout is Config.UDPTimeout's default. README.md, "UDP", says why it is fixed rather
// than derived from the latency seen so far.
const DefaultUDPTimeout = 200 * time.Millisecond

// MaxSources is the most source addresses Config.Sources may ask for: 127.0.0.2 to 127.0.0.254.
const MaxSources = 253

// Progress is a running total, for a progress line.
type Progress struct {
	Elapsed     time.Duration
	Measuring   bool // past warmup
	Established int
	Messages    uint64
	Bytes       uint64
	Errors      uint64
}

// Second is one second of the measured window.
type Second struct {
	Messages uint64  `json:"messages"`
	Bytes    uint64  `json:"bytes"`
	P99us    float64 `json:"p99_us"`
	// Latency is the second's latency histogram (two significant digits, µs): what an
	// HdrHistogram interval log (.hlog) holds per interval.
	Latency *hdrhistogram.Histogram `json:"-"`
}

// Result is what one run measured. Counts and histograms cover the measured window only, except
// the Total* byte counts, which cover the whole run so they can be compared with the server's own
// counters.
type Result struct {
	RampUp         time.Duration  // from the first connect to the last established
	Established    int            // connections established (with -reconnect: total connects)
	Failed         int            // connect attempts that failed
	ConnectErrors  map[string]int // failed connects by errno name (ECONNREFUSED, EMFILE, ETIMEDOUT, ...)
	IOErrors       map[string]int // reads/writes that failed mid-run, by errno name or EOF
	Elapsed        time.Duration  // length of the measured window actually run
	Messages       uint64         // echoed messages completed in the window
	Bytes          uint64         // bytes of the messages completed in the window (frame headers included)
	VerifyFailures uint64         // messages whose echo differed from what was sent
	PerSecond      []Second       // the window, second by second
	// Latency is per message, in microseconds. In open loop it is measured from each message's
	// intended send time (coordinated omission corrected); Uncorrected is from the actual send.
	// In closed loop both are from the actual send and are the same.
	Latency        *hdrhistogram.Histogram
	Uncorrected    *hdrhistogram.Histogram
	ConnectLatency *hdrhistogram.Histogram // µs per successful connect (all runs; matters with Reconnect)
	// ScheduleLag (open loop only, else nil) is, in µs, how late the engine itself got round to a
	// send whose connection had room in its window: timer precision plus the client's own
	// scheduling delay. It should stay near zero; when it does not, the client is part of what
	// Latency measures.
	ScheduleLag   *hdrhistogram.Histogram
	Reconnects    uint64 // connections closed and reopened in the window (Reconnect mode)
	TotalSent     uint64 // bytes written over the whole run, warmup included
	TotalReceived uint64 // bytes read over the whole run, warmup included
	ServerGone    bool   // every connection failed mid-run: the server died or reset all
	// WindowLate is how much later than Config.StartAt+Warmup the window opened, because the
	// ramp was not done by then (or the run was started after StartAt); 0 without StartAt.
	WindowLate time.Duration
	// WindowStart and WindowEnd are the measured window in wall-clock time, so that CPU and
	// other samples taken outside the engine can be cut to exactly the same window.
	WindowStart, WindowEnd time.Time
	// VerifyFailuresTotal counts wrong echoes over the whole run (ramp-up, warmup, window and
	// drain), including messages that failed and never completed: any of them means the server
	// is broken, whenever it happened.
	VerifyFailuresTotal uint64
	// Incomplete counts messages that were due in the window (sent, or scheduled to be sent in open
	// loop) but had not completed when it ended, or were abandoned in it when their connection failed:
	// a stalled server shows here even when it completes nothing at all. In open loop their latency up
	// to the window's end is also recorded in Latency, so a stall cannot vanish from the percentiles.
	Incomplete uint64
	// ConnsEchoed counts connection slots that completed at least one echo inside the window. Below
	// Conns it shows connections that were established but not served: a pool keeping them in
	// the listen backlog, or a server that cannot start threads or processes fast enough.
	ConnsEchoed int
	// KernelTimed counts the completions of the whole run (warmup and drain included) timed by the
	// kernel's receive timestamp (harvest mode); the others were timed at their read.
	KernelTimed uint64

	// UDP runs only (zero for TCP). The loss accounting follows the datagrams sent in the window
	// to their end, drain included: each is echoed, timed out or answered with a corrupted echo,
	// so DatagramsSent = DatagramsEchoed + TimedOut + the corrupted echoes among them.
	DatagramsSent   uint64 // datagrams sent in the window
	DatagramsEchoed uint64 // of those, echoed intact before their timeout
	TimedOut        uint64 // of those, unanswered within UDPTimeout: counted lost once, slot reused
	Late            uint64 // of the timed-out ones, echoed after their timeout after all
	Lost            uint64 // TimedOut - Late: never came back
	// Duplicated, Reordered and Corrupted count echoes that arrived in the window: a second echo of
	// one datagram; an echo whose sequence number is below the highest its flow has seen echoed;
	// an echo whose header is unreadable or names no datagram sent, or whose body differs.
	// Corrupted ones also count in VerifyFailures (and over the whole run in VerifyFailuresTotal).
	Duplicated, Reordered, Corrupted uint64
	// Unmatched is set when some size is below the 12-byte datagram header: echoes are then
	// matched to the flow's datagrams in arrival order and checked by length only, so duplicates,
	// reordering and late echoes cannot be told apart (README.md, "UDP").
	Unmatched bool
	// TotalDatagramsSent and TotalDatagramsReceived cover the whole run, like TotalSent and
	// TotalReceived, for the server's datagram counters.
	TotalDatagramsSent, TotalDatagramsReceived uint64
}

// LossPct is Lost as a percentage of DatagramsSent.
func (r *Result) LossPct() float64 {
	if r.DatagramsSent == 0 {
		return 0
	}
	return float64(r.Lost) / float64(r.DatagramsSent) * 100
}

// MsgsPerSec is the measured throughput in messages per second.
func (r *Result) MsgsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// MBPerSec is the measured echo throughput in megabytes (10^6 bytes) per second: the bytes of the
// messages completed in the window, as sized in Config.Sizes. In Frame mode that includes each
// message's 12-byte frame header, which the server echoes like any other byte.
func (r *Result) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// NewHistogram returns a latency histogram in microseconds from 1 µs to 100 s with 3 significant
// digits, the resolution every echobench histogram uses so they can be merged.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 100_000_000, 3)
}

// Run is implemented in engine.go:
//
//	func Run(ctx context.Context, cfg Config) (*Result, error)
//
// It returns a Result even when it also returns an error (the server died mid-run): a partial
// result is still a result.
