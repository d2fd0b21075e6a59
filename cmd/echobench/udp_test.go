package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"echobench/report"
)

// startUDPEcho starts an in-process UDP echo server that drops every tenth datagram it reads.
func startUDPEcho(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for i := 0; ; i++ {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if i%10 != 9 {
				c.WriteToUDP(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().String()
}

func TestUDPEndToEnd(t *testing.T) {
	addr := startUDPEcho(t)
	out := filepath.Join(t.TempDir(), "udp.json")
	var stdout, stderr bytes.Buffer
	status := run([]string{"-addr", addr, "-udp", "-udp-timeout", "20ms", "-pin=false", "-c", "4", "-pipeline", "2", "-d", "300ms", "-warmup", "50ms", "-o", out}, &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d; stderr:\n%s\nstdout:\n%s", status, stderr.String(), stdout.String())
	}
	for _, want := range []string{"UDP, 4 flows, timeout 20ms", "msgs/s", "latency µs", "% loss", "timed out", "duplicated"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	u := rep.Summary.UDP
	if !rep.Settings.UDP || rep.Settings.Sources != 0 || u == nil || len(rep.Runs) != 1 || rep.Runs[0].UDP == nil {
		t.Fatalf("settings %+v, summary udp %+v", rep.Settings, u)
	}
	if u.Sent == 0 || u.Lost == 0 || u.LossPct < 5 || u.LossPct > 15 || rep.Summary.MsgsPerSec == 0 || rep.Summary.LatencyP99us == 0 {
		t.Errorf("against a server that drops every tenth: %+v, %.0f msgs/s, p99 %.0f µs", u, rep.Summary.MsgsPerSec, rep.Summary.LatencyP99us)
	}
}

func TestUDPRefusesOversizedDatagrams(t *testing.T) {
	for _, tc := range []struct {
		addr, size, want string
	}{
		{"127.0.0.1:9", "65508", "65507"},
		{"[::1]:9", "65528", "65527"},
		{"127.0.0.1:9", "64-70000", "65507"},
	} {
		var stdout, stderr bytes.Buffer
		status := run([]string{"-addr", tc.addr, "-udp", "-pin=false", "-size", tc.size}, &stdout, &stderr)
		msg := stderr.String()
		if status != exitUsage || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "one UDP datagram") || strings.Count(msg, "\n") != 1 {
			t.Errorf("-size %s to %s: status %d, stderr %q; want exit %d and one line naming %s", tc.size, tc.addr, status, msg, exitUsage, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if status := run([]string{"-addr", "127.0.0.1:9", "-size", "0", "-pin=false"}, &stdout, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "-udp") {
		t.Errorf("-size 0 over TCP: status %d, %q", status, stderr.String())
	}
	if status := run([]string{"-model", "process", "-udp"}, &stdout, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "no UDP variant") {
		t.Errorf("-udp -model process: status %d, %q", status, stderr.String())
	}
	for _, flags := range [][]string{{"-frame"}, {"-reconnect", "3"}, {"-udp-timeout", "0"}} {
		var stdout, stderr bytes.Buffer
		if status := run(append([]string{"-addr", "127.0.0.1:9", "-udp", "-pin=false"}, flags...), &stdout, &stderr); status != exitUsage {
			t.Errorf("-udp %v: status %d, want %d", flags, status, exitUsage)
		}
	}
}
