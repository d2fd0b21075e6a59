package measure

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"echobench/internal/child"
	"echobench/internal/procstat"
	"echobench/loadgen"
	"echobench/report"
	"echobench/server"
)

// smallLoad is a short closed-loop load, mixing sizes so that reads and writes split unevenly.
func smallLoad(addr string) loadgen.Config {
	return loadgen.Config{Addr: addr, Conns: 4, Duration: 300 * time.Millisecond, Sizes: []int{64, 4096}, Pipeline: 1, Verify: true}
}

// runAgainst measures one run of smallLoad against the external server pid at addr and returns
// the run and its warnings about the byte check. Warnings about the machine (unpinned, the two
// sides share the CPUs and either may look saturated, and full CPUs starve the CPU sampler; on a
// virtual machine the host may steal them) depend on what else runs there, not on the check, so
// they are dropped.
func runAgainst(t *testing.T, pid int, addr string) (*report.Run, []string) {
	t.Helper()
	var warnings []string
	spec := Spec{ServerPID: pid, Load: smallLoad(addr), Warn: func(format string, args ...any) {
		w := fmt.Sprintf(format, args...)
		if strings.Contains(w, "(unpinned)") || strings.Contains(w, "saturated") || strings.Contains(w, "host-limited") || strings.Contains(w, "CPU sampler") {
			t.Logf("dropped a warning about the machine: %s", w)
			return
		}
		warnings = append(warnings, w)
	}}
	out, err := Run(context.Background(), spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Run
	if r.BytesSentTotal == 0 || r.BytesReceivedTotal != r.BytesSentTotal {
		t.Errorf("whole run: echobench sent %d and received %d bytes; want the same, above 0", r.BytesSentTotal, r.BytesReceivedTotal)
	}
	if bc := r.ByteCheck; bc == nil || bc.Source != "proc-io" || bc.ClientSent != r.BytesSentTotal || bc.ClientReceived != r.BytesReceivedTotal {
		t.Fatalf("byte check %+v: want one from proc-io over the run's %d/%d bytes", bc, r.BytesSentTotal, r.BytesReceivedTotal)
	}
	t.Logf("byte check: rchar %d vs sent %d (%+.4f%%), wchar %d vs received %d (%+.4f%%)",
		r.ByteCheck.ServerIn, r.ByteCheck.ClientSent, r.ByteCheck.InDiffPct, r.ByteCheck.ServerOut, r.ByteCheck.ClientReceived, r.ByteCheck.OutDiffPct)
	return r, warnings
}

// TestProcIOByteCheckExternalServer loads a real server process that echoes with read(2) and
// write(2) (stdnet, through Go's net package), given only by its pid as -server-pid gives it:
// the kernel's counters of its tree must agree with echobench's counts and with the server's own.
func TestProcIOByteCheckExternalServer(t *testing.T) {
	srv, err := child.Start(child.Options{Model: "stdnet"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(DefaultStopGrace)
	r, warnings := runAgainst(t, srv.PID, srv.Addr)
	bc := r.ByteCheck
	if math.Abs(bc.InDiffPct) > procIOTolerancePct || math.Abs(bc.OutDiffPct) > procIOTolerancePct || len(warnings) > 0 {
		t.Errorf("byte check %+v, warnings %q: want rchar and wchar within %g%% of echobench's counts", bc, warnings, procIOTolerancePct)
	}
	rep := report.Report{Runs: []report.Run{*r}}
	rep.Summarize("", report.Hists{})
	var table strings.Builder
	rep.WriteTable(&table)
	for _, want := range []string{"echobench bytes", "rchar/wchar of the server tree"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if s := rep.Summary; s.ByteCheckSource != "proc-io" || s.BytesSentTotal != r.BytesSentTotal {
		t.Errorf("summary: byte check source %q, %d bytes sent; want proc-io and %d", s.ByteCheckSource, s.BytesSentTotal, r.BytesSentTotal)
	}
	own, err := srv.RequestStats(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := report.DiffPct(bc.ServerIn, own.BytesIn); math.Abs(d) > procIOTolerancePct {
		t.Errorf("rchar moved by %d, the server counted %d bytes read (%+.2f%%)", bc.ServerIn, own.BytesIn, d)
	}
}

// TestProcIOByteCheckSendServer loads the C reference server, which reads with read(2) but
// echoes with send(2): its reads show in rchar, its writes do not show in wchar at all, and the
// run must say why instead of letting the gap pass for a broken server.
func TestProcIOByteCheckSendServer(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to build bench/reference/epoll_echo.c")
	}
	bin := filepath.Join(t.TempDir(), "epoll_echo")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "../bench/reference/epoll_echo.c").CombinedOutput(); err != nil {
		t.Fatalf("build the C reference: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the C reference printed no address: %v", err)
	}
	r, warnings := runAgainst(t, cmd.Process.Pid, strings.TrimSpace(line))
	bc := r.ByteCheck
	if math.Abs(bc.InDiffPct) > procIOTolerancePct {
		t.Errorf("rchar moved by %d against %d sent (%+.2f%%): the server reads with read(2), which rchar counts", bc.ServerIn, bc.ClientSent, bc.InDiffPct)
	}
	if bc.OutDiffPct > -99 {
		t.Errorf("wchar moved by %d against %d received: the server writes with send(2), which wchar does not count", bc.ServerOut, bc.ClientReceived)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "wchar") || !strings.Contains(warnings[0], "send(2)") {
		t.Errorf("warnings %q: want one saying wchar does not see send(2)", warnings)
	}
}

func TestProcIOByteCheckWarnings(t *testing.T) {
	res := &loadgen.Result{TotalSent: 100_000, TotalReceived: 100_000}
	before := procstat.IO{RChar: 5000, WChar: 7000}
	for _, tc := range []struct {
		name  string
		after procstat.IO
		want  []string
	}{
		{"exact", procstat.IO{RChar: 105_000, WChar: 107_000}, nil},
		{"a log line more", procstat.IO{RChar: 105_000, WChar: 107_080}, nil},
		{"reads elsewhere", procstat.IO{RChar: 155_000, WChar: 107_000}, []string{"rchar", "also counts"}},
		{"writes unseen", procstat.IO{RChar: 105_000, WChar: 7000}, []string{"wchar", "send(2)"}},
		{"counter went back", procstat.IO{RChar: 105_000, WChar: 6000}, []string{"wchar did not move"}},
	} {
		bc, warnings := procIOByteCheck(res, before, tc.after)
		if bc.Source != "proc-io" || bc.ClientSent != res.TotalSent {
			t.Errorf("%s: byte check %+v", tc.name, bc)
		}
		if tc.want == nil {
			if len(warnings) > 0 {
				t.Errorf("%s: warnings %q, want none", tc.name, warnings)
			}
			continue
		}
		if len(warnings) != 1 {
			t.Errorf("%s: warnings %q, want one", tc.name, warnings)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(warnings[0], w) {
				t.Errorf("%s: warning %q lacks %q", tc.name, warnings[0], w)
			}
		}
	}
}

// TestModelRunByteCounts checks that a -model run carries the whole run's byte counts as well as
// the byte check from the server's own stats line.
func TestModelRunByteCounts(t *testing.T) {
	out, err := Run(context.Background(), Spec{Model: "stdnet", Load: smallLoad("")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Run
	if bc := r.ByteCheck; bc == nil || bc.Source != "exit" || r.BytesSentTotal == 0 || bc.ClientSent != r.BytesSentTotal || bc.ServerIn != r.BytesSentTotal || bc.ServerOut != r.BytesReceivedTotal {
		t.Errorf("run sent %d, received %d; byte check %+v: want the server's own count of the same bytes", r.BytesSentTotal, r.BytesReceivedTotal, r.ByteCheck)
	}
}

// TestUDPByteCheck checks the datagram check's rule: loss on either leg is consistent and is
// placed on its leg; a server that read more than was sent, or sent less than was read back, is not.
func TestUDPByteCheck(t *testing.T) {
	res := &loadgen.Result{TotalDatagramsSent: 100, TotalDatagramsReceived: 90, TotalSent: 6400, TotalReceived: 5760}
	lossy := &server.Stats{DatagramsIn: 95, DatagramsOut: 93, Dropped: 2, BytesIn: 6080, BytesOut: 5952}
	if u := udpByteCheck(res, lossy); !u.Consistent || u.LostInbound != 5 || u.LostReturn != 3 || u.ServerDropped != 2 {
		t.Errorf("lossy server: %+v", u)
	}
	for _, bad := range []*server.Stats{
		{DatagramsIn: 101, DatagramsOut: 95, BytesIn: 6464, BytesOut: 6080},
		{DatagramsIn: 100, DatagramsOut: 89, BytesIn: 6400, BytesOut: 5696},
	} {
		if u := udpByteCheck(res, bad); u.Consistent {
			t.Errorf("server counts %+v against %+v: consistent", bad, res)
		}
	}
	run := FromResult(0, &loadgen.Result{DatagramsSent: 200, DatagramsEchoed: 190, TimedOut: 10, Late: 2, Lost: 8, Duplicated: 1}, false, true)
	rep := report.Report{Runs: []report.Run{run, run}}
	rep.Summarize("x", report.Hists{})
	if u := rep.Summary.UDP; u == nil || u.Sent != 400 || u.Lost != 16 || u.LossPct != 4 || u.Duplicated != 2 {
		t.Errorf("summary of two runs: %+v", u)
	}
	if tcp := FromResult(0, res, false, false); tcp.UDP != nil {
		t.Error("a TCP run has UDP counts")
	}
}
