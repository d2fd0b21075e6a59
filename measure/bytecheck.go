package measure

import (
	"fmt"
	"math"

	"echobench/internal/procstat"
	"echobench/loadgen"
	"echobench/report"
	"echobench/server"
)

// procIOTolerancePct is how far the kernel's counters of an external server may stray from
// echobench's counts before the run warns. Besides the socket bytes they count the server's other
// reads and writes during the run (a log line, an 8-byte eventfd wake-up): bytes, against the
// megabytes of any real run. A larger gap means they are not seeing the server's socket IO, or
// something else in the tree was busy, and the warning says which calls they miss.
const procIOTolerancePct = 1.0

// procIOByteCheck compares echobench's whole-run counts with the server tree's rchar and wchar
// moved between before (taken before the first connect) and after (taken after the load ended),
// and returns the warnings a reader needs when they disagree. procstat.IO says what the two
// counters count and miss.
func procIOByteCheck(res *loadgen.Result, before, after procstat.IO) (*report.ByteCheck, []string) {
	// A counter cannot go back; if the end reads less (a child reaped mid-walk, see
	// procstat.TreeIO), the tree's delta is not knowable and 0 says so louder than a wrap-around.
	delta := func(a, b uint64) uint64 {
		if b < a {
			return 0
		}
		return b - a
	}
	bc := byteCheck(res, delta(before.RChar, after.RChar), delta(before.WChar, after.WChar), "proc-io")
	var warnings []string
	for _, d := range []struct {
		counter, clientDid, seen, missed string
		server, client                   uint64
		diff                             float64
	}{
		{"rchar", "sent", "read(2), readv(2) and pread(2)", "recv(2), recvfrom(2), recvmsg(2), splice(2) or io_uring", bc.ServerIn, bc.ClientSent, bc.InDiffPct},
		{"wchar", "received", "write(2), writev(2), pwrite(2) and sendfile(2)", "send(2), sendto(2), sendmsg(2), splice(2) or io_uring", bc.ServerOut, bc.ClientReceived, bc.OutDiffPct},
	} {
		gap := fmt.Sprintf("byte check from the kernel: the server tree's %s moved by %d bytes against the %d echobench %s (%+.1f%%)",
			d.counter, d.server, d.client, d.clientDid, d.diff)
		switch {
		case math.Abs(d.diff) <= procIOTolerancePct:
		case d.server == 0 && d.client > 0:
			// Nothing counted at all: the server's IO goes entirely through calls the counter
			// does not see. Without the byte counts the warning reads the same for every run,
			// so a table of many runs says it once.
			warnings = append(warnings, fmt.Sprintf("byte check from the kernel: the server tree's %s did not move although echobench %s bytes: %s counts only %s, so this server uses %s, and this check cannot vouch for its bytes", d.counter, d.clientDid, d.counter, d.seen, d.missed))
		case d.diff < 0:
			warnings = append(warnings, fmt.Sprintf("%s: %s counts only %s, so a server that uses %s is not seen there, and this check cannot vouch for its bytes", gap, d.counter, d.seen, d.missed))
		default:
			warnings = append(warnings, fmt.Sprintf("%s: %s also counts the tree's file, pipe and eventfd IO during the run, so something else in the server tree read or wrote during the run", gap, d.counter))
		}
	}
	return bc, warnings
}

// byteCheck compares echobench's whole-run counts with the server's, from source.
func byteCheck(res *loadgen.Result, serverIn, serverOut uint64, source string) *report.ByteCheck {
	return &report.ByteCheck{
		ClientSent: res.TotalSent, ClientReceived: res.TotalReceived,
		ServerIn: serverIn, ServerOut: serverOut,
		InDiffPct:  report.DiffPct(serverIn, res.TotalSent),
		OutDiffPct: report.DiffPct(serverOut, res.TotalReceived),
		Source:     source,
	}
}

// udpByteCheck is the datagram side of a UDP run's check against the server's own counters, st.
// Loss makes exact equality impossible, so it checks the two inequalities that hold whatever is
// lost (report.UDPByteCheck) and says where the missing datagrams went missing.
func udpByteCheck(res *loadgen.Result, st *server.Stats) *report.UDPByteCheck {
	gap := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return &report.UDPByteCheck{
		ClientSent: res.TotalDatagramsSent, ClientReceived: res.TotalDatagramsReceived,
		ServerIn: st.DatagramsIn, ServerOut: st.DatagramsOut, ServerDropped: st.Dropped,
		LostInbound: gap(res.TotalDatagramsSent, st.DatagramsIn),
		LostReturn:  gap(st.DatagramsOut, res.TotalDatagramsReceived),
		Consistent: st.DatagramsIn <= res.TotalDatagramsSent && st.BytesIn <= res.TotalSent &&
			st.DatagramsOut >= res.TotalDatagramsReceived && st.BytesOut >= res.TotalReceived,
	}
}
