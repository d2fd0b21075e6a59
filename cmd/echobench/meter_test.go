package main

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startSlowEchoServer listens on loopback and echoes each read after delay, and every fourth
// after slowDelay: a server that is the slow part of every round trip and, at the slow echoes,
// slower than the schedule, so that its connections fall behind and catch up.
func startSlowEchoServer(t *testing.T, delay, slowDelay time.Duration) string {
	return startTestServer(t, func(buf []byte, i int) []byte {
		if i%4 == 0 {
			time.Sleep(slowDelay)
		} else {
			time.Sleep(delay)
		}
		return buf
	})
}

// startTestServer listens on loopback and answers each read of every connection with what
// answer makes of it (the read's bytes and its 1-based count on that connection), until the
// test ends: the skeleton of the misbehaving servers these tests load.
func startTestServer(t *testing.T, answer func(read []byte, i int) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, 4096)
				for i := 1; ; i++ {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(answer(buf[:n], i)); err != nil {
						return
					}
				}
			})
		}
	}()
	return ln.Addr().String()
}

// TestSlowServerIsNotMeterLimited loads a server whose echoes take a tenth of a second or more
// at a rate the client keeps without effort: the tail is large, and it is the server's, so the
// meter-limited flag must stay down although the run is open loop and the rule is applied. The
// delays are long so that the client losing its CPU for a scheduler time slice or two, on a
// loaded machine, stays well under a tenth of them.
func TestSlowServerIsNotMeterLimited(t *testing.T) {
	addr := startSlowEchoServer(t, 100*time.Millisecond, 300*time.Millisecond)
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	// 20 connections at 100 msgs/s: one send every 200 ms each, later than a 100 ms echo and
	// sooner than a 300 ms one.
	status := run([]string{"-addr", addr, "-pin=false", "-c", "20", "-rate", "100", "-d", "2s", "-warmup", "0", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitOK {
		t.Fatalf("exit status %d", status)
	}
	rep := readReport(t, out)
	if len(rep.Runs) != 1 || rep.Runs[0].ScheduleLag == nil || rep.Runs[0].ScheduleLag.Count == 0 {
		t.Fatalf("no schedule lag recorded, so the rule was not exercised: %+v", rep.Runs)
	}
	s := rep.Summary
	if s.LatencyP99us < 100_000 {
		t.Errorf("p99 %.0f µs: the server's delay of 100-300 ms does not show", s.LatencyP99us)
	}
	if s.MeterLimited != nil || rep.Runs[0].MeterLimited != nil {
		t.Errorf("a slow server's latency flagged as meter-limited: summary %+v, run %+v, lag %+v",
			s.MeterLimited, rep.Runs[0].MeterLimited, rep.Runs[0].ScheduleLag)
	}
	if strings.Contains(stdout.String(), "METER-LIMITED") {
		t.Errorf("the table says METER-LIMITED for a slow server")
	}
}

// TestOverloadedClientIsMeterLimited pins echobench's single engine worker to one CPU with
// goroutines that keep that CPU busy: the engine waits for the CPU at every wake, its sends go
// out late by about a scheduler time slice, that lateness is the bulk of the latency it reports,
// and the flag must say so, in the JSON and the table.
func TestOverloadedClientIsMeterLimited(t *testing.T) {
	keepAffinity(t)
	var stop atomic.Bool
	var burners sync.WaitGroup
	for range 4 {
		burners.Go(func() {
			for !stop.Load() {
			}
		})
	}
	t.Cleanup(func() { stop.Store(true); burners.Wait() })
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	// echobench pins this process, burners included, to its client CPU and sets GOMAXPROCS to
	// match, so the engine shares one P with four busy goroutines; the stdnet server child has
	// the other CPU to itself and is never the slow side at 2,000 msgs/s.
	status := run([]string{"-model", "stdnet", "-workers", "1", "-c", "10", "-rate", "2000", "-d", "2s", "-warmup", "0", "-o", out}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if status != exitOK {
		t.Fatalf("exit status %d", status)
	}
	rep := readReport(t, out)
	if len(rep.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(rep.Runs))
	}
	if rep.Runs[0].MeterLimited == nil || rep.Summary.MeterLimited == nil {
		t.Fatalf("an overloaded client not flagged meter-limited: run %+v, summary %+v, lag %+v, latency p99 %.0f p99.9 %.0f µs",
			rep.Runs[0].MeterLimited, rep.Summary.MeterLimited, rep.Runs[0].ScheduleLag, rep.Summary.LatencyP99us, rep.Summary.LatencyP999us)
	}
	if !strings.Contains(stdout.String(), "METER-LIMITED") {
		t.Errorf("the table does not say METER-LIMITED")
	}
}
