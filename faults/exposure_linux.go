package faults

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"echobench/internal/child"
	"echobench/server"
)

func exposure() Scenario {
	return Scenario{
		Name: "exposure",
		Rule: "with no -addr the server binds loopback; a non-loopback -addr is refused without -allow-remote; a UDP variant never sends more bytes than it received",
		Fast: true,
		Run: func(ctx context.Context, e *Env) Cell {
			bin, self, err := child.FindBinary(e.opts.bin("echoserver"))
			if err != nil || self {
				return Cell{Verdict: NotApplicable, Figure: "no echoserver binary", Detail: "make faults builds bin/echoserver; this check runs it as a user would"}
			}
			var problems []string
			bound, err := defaultBind(ctx, bin, e.Row)
			if err != nil {
				problems = append(problems, "default bind: "+err.Error())
			} else if ip := net.ParseIP(hostOf(bound)); ip == nil || !ip.IsLoopback() {
				problems = append(problems, "with no -addr it bound "+bound)
			}
			out, err := exec.CommandContext(ctx, bin, append([]string{"-model", e.Row.Model, "-addr", "0.0.0.0:0"}, e.Row.Args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "-allow-remote") {
				problems = append(problems, fmt.Sprintf("-addr 0.0.0.0:0 without -allow-remote: %v, %q", err, firstLine(string(out))))
			}
			udp := "no UDP variant"
			if m, _ := server.Lookup(e.Row.Model); m.StartUDP != nil {
				in, out, err := udpBytes(e)
				switch {
				case err != nil:
					problems = append(problems, "UDP: "+err.Error())
				case out > in:
					problems = append(problems, fmt.Sprintf("UDP: %d bytes out for %d in", out, in))
				}
				udp = fmt.Sprintf("UDP %d B in, %d B out", in, out)
			}
			v, why := judge(e, "exposure", len(problems) == 0)
			return Cell{Verdict: v, Figure: fmt.Sprintf("binds %s by default; %s", hostOf(bound), udp), Detail: strings.Join(problems, "; ") + " " + why}
		},
	}
}

// defaultBind starts the row's echoserver with no -addr and returns the address it prints.
func defaultBind(ctx context.Context, bin string, r Row) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-model", r.Model, "-quiet"}, r.Args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }() // our own child, by its handle
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no address line: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func firstLine(s string) string { return strings.SplitN(strings.TrimSpace(s), "\n", 2)[0] }

// udpBytes sends datagrams of several sizes to the row's UDP variant, some of them twice, reads
// what comes back, and returns the server's own byte counts.
func udpBytes(e *Env) (in, out uint64, err error) {
	srv, err := e.start("-udp")
	if err != nil {
		return 0, 0, err
	}
	defer srv.Stop(2 * time.Second)
	ua, err := net.ResolveUDPAddr("udp", srv.Addr)
	if err != nil {
		return 0, 0, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	for _, size := range []int{0, 1, 64, 1472, 8192} {
		for range 2 {
			c.Write(make([]byte, size))
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond)
	st, err := statsOf(srv)
	if err != nil {
		return 0, 0, err
	}
	return st.BytesIn, st.BytesOut, nil
}
