package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func TestClosedLoopVerifiesEveryMode(t *testing.T) {
	s := startTestServer(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"pingpong", Config{Conns: 8, Sizes: []int{64}, Pipeline: 1}},
		{"pipelined sizes", Config{Conns: 4, Sizes: []int{1, 100, 1500, 100000}, Pipeline: 8}},
		{"frames", Config{Conns: 4, Sizes: []int{12, 64, 1500, 70000}, Pipeline: 4, Frame: true}},
		{"two workers", Config{Conns: 6, Sizes: []int{512}, Pipeline: 2, Workers: 2, Frame: true}},
		{"open loop", Config{Conns: 4, Sizes: []int{64, 4096}, Pipeline: 2, Rate: 2000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Addr = s.addr()
			cfg.Verify = true
			cfg.Warmup = 100 * time.Millisecond
			cfg.Duration = 400 * time.Millisecond
			before := time.Now()
			res, err := runChecked(t, context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.WindowStart.Before(before) || res.WindowEnd.Sub(res.WindowStart) != res.Elapsed || res.WindowEnd.After(time.Now()) {
				t.Errorf("window %v .. %v (elapsed %v) is not inside the run", res.WindowStart, res.WindowEnd, res.Elapsed)
			}
			if res.Established != cfg.Conns || res.Failed != 0 {
				t.Errorf("established %d, failed %d (%v); want %d, 0", res.Established, res.Failed, res.ConnectErrors, cfg.Conns)
			}
			// Open loop records the messages still due at the window's end in Latency too; closed
			// loop only counts them, and never has more than its window in flight.
			wantLatencies := res.Messages
			if cfg.Rate > 0 {
				wantLatencies += res.Incomplete
			} else if res.Incomplete > uint64(cfg.Conns*cfg.Pipeline) {
				t.Errorf("%d incomplete with %d×%d in flight at most", res.Incomplete, cfg.Conns, cfg.Pipeline)
			}
			if res.Messages == 0 || res.Latency.TotalCount() != int64(wantLatencies) || res.Uncorrected.TotalCount() != int64(res.Messages) {
				t.Errorf("%d messages, %d incomplete, %d and %d latencies recorded", res.Messages, res.Incomplete, res.Latency.TotalCount(), res.Uncorrected.TotalCount())
			}
			if res.VerifyFailures != 0 || res.VerifyFailuresTotal != 0 || len(res.IOErrors) != 0 {
				t.Errorf("verify failures %d (%d in all), IO errors %v against a correct server", res.VerifyFailures, res.VerifyFailuresTotal, res.IOErrors)
			}
			// The end of the run drains the echoes in flight, so everything sent came back.
			if res.TotalSent != res.TotalReceived || res.TotalReceived < res.Bytes {
				t.Errorf("sent %d, received %d, window bytes %d", res.TotalSent, res.TotalReceived, res.Bytes)
			}
			var perSecond uint64
			for _, sec := range res.PerSecond {
				perSecond += sec.Messages
			}
			if perSecond != res.Messages || res.Elapsed != cfg.Duration {
				t.Errorf("per-second messages add up to %d of %d; elapsed %v", perSecond, res.Messages, res.Elapsed)
			}
			if res.ConnectLatency.TotalCount() != int64(cfg.Conns) {
				t.Errorf("%d connect latencies, want %d", res.ConnectLatency.TotalCount(), cfg.Conns)
			}
		})
	}
}

func TestReconnectCountsConnects(t *testing.T) {
	s := startTestServer(t)
	res, err := runChecked(t, context.Background(), Config{
		Addr: s.addr(), Conns: 4, Sizes: []int{64}, Pipeline: 2, Verify: true, Frame: true,
		Reconnect: 3, Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Reconnects == 0 || res.Established <= 4 || int64(res.Established) != res.ConnectLatency.TotalCount() {
		t.Errorf("reconnects %d, established %d, connect latencies %d", res.Reconnects, res.Established, res.ConnectLatency.TotalCount())
	}
	if res.VerifyFailures != 0 || len(res.IOErrors) != 0 || res.Messages == 0 {
		t.Errorf("messages %d, verify failures %d, IO errors %v", res.Messages, res.VerifyFailures, res.IOErrors)
	}
}

// TestCoordinatedOmission stalls every echo for 100 ms once a second. In open loop the messages
// the schedule wanted sent during a stall are late, and the corrected latency must say so.
//
// The numbers: 4 connections at 2,000 msgs/s in all is one message every 2 ms per connection. A
// stall of S = 100 ms per second delays every message intended during it by the rest of the
// stall, so about (100 - x)/1000 of all messages wait longer than x ms: the corrected p99 is near
// 90 ms (and p95 near 50 ms). Measured from the actual send, only the one message per connection
// that went out during the stall waits (the rest queue behind it in the client and go out after
// it): 1 in 500 messages, 0.2%, well below the 1% a p99 sees, so the uncorrected p99 is an
// ordinary loopback round trip, well under a millisecond on an idle machine and a few ms on a
// loaded one. The thresholds, corrected p99 >= 50 ms and uncorrected p99 < 30 ms, leave a wide
// margin on both sides: noise can only raise the corrected figure, and the uncorrected one would
// need 30 ms of scheduling delay at its 99th percentile to fail.
func TestCoordinatedOmission(t *testing.T) {
	s := startTestServer(t)
	done := make(chan struct{})
	var stalls sync.WaitGroup
	stalls.Go(func() {
		for {
			select {
			case <-done:
				s.stalled.Store(false)
				return
			case <-time.After(900 * time.Millisecond):
			}
			s.stalled.Store(true)
			time.Sleep(100 * time.Millisecond)
			s.stalled.Store(false)
		}
	})
	defer stalls.Wait()
	defer close(done)

	res, err := runChecked(t, context.Background(), Config{
		Addr: s.addr(), Conns: 4, Sizes: []int{64}, Pipeline: 1, Rate: 2000, Verify: true,
		Duration: 3 * time.Second,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	corrected := time.Duration(res.Latency.ValueAtQuantile(99)) * time.Microsecond
	uncorrected := time.Duration(res.Uncorrected.ValueAtQuantile(99)) * time.Microsecond
	t.Logf("%d messages; p99 corrected %v, uncorrected %v; max %v / %v", res.Messages, corrected, uncorrected,
		time.Duration(res.Latency.Max())*time.Microsecond, time.Duration(res.Uncorrected.Max())*time.Microsecond)
	if corrected < 50*time.Millisecond {
		t.Errorf("corrected p99 %v hides the 100 ms stalls; want >= 50ms", corrected)
	}
	if uncorrected >= 30*time.Millisecond {
		t.Errorf("uncorrected p99 %v; want < 30ms (only 0.2%% of sends meet a stall)", uncorrected)
	}
	// Open loop keeps the schedule: about Rate × Duration messages, even with the stalls.
	if res.Messages < 2000*3*8/10 {
		t.Errorf("%d messages in 3 s at 2000/s", res.Messages)
	}
}

func TestVerifyCatchesCorruption(t *testing.T) {
	s := startCorruptingServer(t, func(b []byte, off int) {
		// Flip one byte in every 10,000 of each connection's stream. With 1000-byte messages it
		// falls in a payload, never in a frame header.
		for i := range b {
			if (off+i)%10000 == 5500 {
				b[i] ^= 0x20
			}
		}
	})
	for _, frame := range []bool{false, true} {
		res, err := runChecked(t, context.Background(), Config{
			Addr: s.addr(), Conns: 4, Sizes: []int{1000}, Pipeline: 2, Verify: true, Frame: frame,
			Duration: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("frame %v: Run: %v", frame, err)
		}
		if res.VerifyFailures == 0 || res.VerifyFailures > res.Messages {
			t.Errorf("frame %v: %d verify failures in %d messages from a corrupting server", frame, res.VerifyFailures, res.Messages)
		}
	}
}

// TestVerifyCountsFailuresOutsideWindow corrupts only the first echo of every connection, which
// arrives during ramp-up or warmup: the window sees a correct server, but the run must not.
func TestVerifyCountsFailuresOutsideWindow(t *testing.T) {
	s := startCorruptingServer(t, func(b []byte, off int) {
		// Byte 20 of the stream: in the first message's payload, past a frame header.
		if i := 20 - off; i >= 0 && i < len(b) {
			b[i] ^= 0x20
		}
	})
	for _, frame := range []bool{false, true} {
		res, err := runChecked(t, context.Background(), Config{
			Addr: s.addr(), Conns: 4, Sizes: []int{64}, Pipeline: 1, Verify: true, Frame: frame,
			Warmup: 200 * time.Millisecond, Duration: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("frame %v: Run: %v", frame, err)
		}
		if res.VerifyFailuresTotal != 4 || res.VerifyFailures > res.VerifyFailuresTotal {
			t.Errorf("frame %v: %d verify failures in all (%d in the window); want one per connection, 4", frame, res.VerifyFailuresTotal, res.VerifyFailures)
		}
	}
}

// startHalfEchoServer starts a server that reads each connection's first 64-byte message, echoes
// its first half with one byte flipped, and closes: the FIN arrives right behind the data.
func startHalfEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				msg := make([]byte, 64)
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				msg[5] ^= 0x20
				c.Write(msg[:32])
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestServerCloseWithDataIsSeen: a FIN that arrives together with data raises a single
// edge-triggered event; the engine must still see the close, count it and end the run, and count
// the corrupted half-echo that will never complete.
func TestServerCloseWithDataIsSeen(t *testing.T) {
	addr := startHalfEchoServer(t)
	const conns = 8
	start := time.Now()
	res, err := runChecked(t, context.Background(), Config{
		Addr: addr, Conns: conns, Sizes: []int{64}, Pipeline: 1, Verify: true, Duration: 30 * time.Second,
	})
	if err == nil || !res.ServerGone {
		t.Errorf("err %v, server gone %v; want the run to fail with every connection closed", err, res.ServerGone)
	}
	if res.IOErrors["EOF"] != conns || res.VerifyFailuresTotal != conns || res.Messages != 0 {
		t.Errorf("IO errors %v, %d verify failures in all, %d messages; want EOF×%d, %d, 0", res.IOErrors, res.VerifyFailuresTotal, res.Messages, conns, conns)
	}
	if time.Since(start) >= 20*time.Second {
		t.Errorf("run went on for %v after every connection was closed", time.Since(start))
	}
}

// TestResetMessagesStayInLatency: in open loop, a server that stops answering and then resets its
// connections must not look better than one that answers late. The messages in flight at the
// reset will never complete; they count as incomplete, with their latency up to the window's
// end. 4 connections at 400 msgs/s; the server stalls 300 ms into the run and resets everything
// 300 ms later, so each connection abandons one message that had waited since about 300 ms; the
// window ends at 1.2 s, so each such latency is about 0.9 s, far above the 500 ms threshold.
func TestResetMessagesStayInLatency(t *testing.T) {
	s := startTestServer(t)
	stall := time.AfterFunc(300*time.Millisecond, func() { s.stalled.Store(true) })
	reset := time.AfterFunc(600*time.Millisecond, func() {
		s.resetAll()
		s.stalled.Store(false)
	})
	res, err := runCheckedThen(t, context.Background(), Config{
		Addr: s.addr(), Conns: 4, Sizes: []int{64}, Pipeline: 1, Rate: 400, Verify: true,
		Duration: 1200 * time.Millisecond,
	}, func() {
		stall.Stop()
		reset.Stop()
		s.stalled.Store(false)
	})
	if err == nil || !res.ServerGone {
		t.Errorf("err %v, server gone %v; want the run to fail with every connection reset", err, res.ServerGone)
	}
	max := time.Duration(res.Latency.Max()) * time.Microsecond
	t.Logf("%d messages, %d incomplete, IO errors %v; corrected max %v", res.Messages, res.Incomplete, res.IOErrors, max)
	if res.Incomplete != 4 || res.Latency.TotalCount() != int64(res.Messages+res.Incomplete) {
		t.Errorf("%d incomplete, %d latencies for %d messages; want the 4 messages the resets abandoned counted, with their latency",
			res.Incomplete, res.Latency.TotalCount(), res.Messages)
	}
	if max < 500*time.Millisecond {
		t.Errorf("corrected max %v hides messages abandoned after waiting most of a second", max)
	}
}

// TestStalledServerStaysInLatency: in open loop a server that falls silent for the end of the
// window completes nothing more, but what was due must show in Incomplete and in Latency.
//
// 4 connections at 400 msgs/s in all; the server stalls 300 ms into the run and stays silent past
// the window's end (1.2 s after the ramp), so at least the last 0.9 s of the window is silence:
// about 360 sends due and never answered, with latencies up to 0.9 s, against about 120 answered
// at loopback speed. The thresholds (max >= 500 ms, p90 >= 300 ms) are far below those figures.
// The second second of the window starts after the stall began, so it completes nothing.
func TestStalledServerStaysInLatency(t *testing.T) {
	s := startTestServer(t)
	stall := time.AfterFunc(300*time.Millisecond, func() { s.stalled.Store(true) })
	res, err := runCheckedThen(t, context.Background(), Config{
		Addr: s.addr(), Conns: 4, Sizes: []int{64}, Pipeline: 1, Rate: 400, Verify: true,
		Duration: 1200 * time.Millisecond,
	}, func() {
		stall.Stop()
		s.stalled.Store(false) // let the server's goroutines see the closed sockets and end
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	max := time.Duration(res.Latency.Max()) * time.Microsecond
	p90 := time.Duration(res.Latency.ValueAtQuantile(90)) * time.Microsecond
	t.Logf("%d messages, %d incomplete; corrected p90 %v, max %v; per second %+v", res.Messages, res.Incomplete, p90, max, res.PerSecond)
	if res.Incomplete == 0 || res.Latency.TotalCount() != int64(res.Messages+res.Incomplete) {
		t.Errorf("%d incomplete, %d latencies for %d messages", res.Incomplete, res.Latency.TotalCount(), res.Messages)
	}
	if max < 500*time.Millisecond || p90 < 300*time.Millisecond {
		t.Errorf("corrected p90 %v, max %v hide a stall of most of a second", p90, max)
	}
	if len(res.PerSecond) != 2 || res.PerSecond[1].Messages != 0 {
		t.Errorf("per second %+v; want 2 seconds, the second one empty", res.PerSecond)
	}
}

func TestServerKilledMidRun(t *testing.T) {
	s := startTestServer(t)
	time.AfterFunc(300*time.Millisecond, s.kill)
	start := time.Now()
	res, err := runChecked(t, context.Background(), Config{
		Addr: s.addr(), Conns: 20, Sizes: []int{64}, Pipeline: 1, Verify: true, Duration: 30 * time.Second,
	})
	if err == nil {
		t.Fatal("Run returned no error after the server died")
	}
	if !res.ServerGone || res.Messages == 0 || len(res.IOErrors) == 0 {
		t.Errorf("server gone %v, %d messages, IO errors %v", res.ServerGone, res.Messages, res.IOErrors)
	}
	if res.Elapsed >= 30*time.Second || time.Since(start) >= 20*time.Second {
		t.Errorf("run went on for %v (window %v) after the server died", time.Since(start), res.Elapsed)
	}
	t.Logf("partial result: %d messages in %v; IO errors %v; err: %v", res.Messages, res.Elapsed, res.IOErrors, err)
}

func TestNoServer(t *testing.T) {
	s := startTestServer(t)
	addr := s.addr()
	s.kill()
	res, err := runChecked(t, context.Background(), Config{Addr: addr, Conns: 5, Duration: time.Second})
	if err == nil || res.Established != 0 || res.Failed != 5 || res.ConnectErrors["ECONNREFUSED"] != 5 {
		t.Errorf("err %v, established %d, failed %d, %v", err, res.Established, res.Failed, res.ConnectErrors)
	}
}

func TestCancelReturnsPartialResult(t *testing.T) {
	s := startTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	res, err := runChecked(t, ctx, Config{
		Addr: s.addr(), Conns: 10, Sizes: []int{64}, Pipeline: 1, ConnectRate: 1000, Duration: time.Minute,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's", err)
	}
	if res.Messages == 0 || res.Elapsed <= 0 || res.Elapsed >= time.Minute || len(res.IOErrors) != 0 {
		t.Errorf("partial result: %d messages in %v, IO errors %v", res.Messages, res.Elapsed, res.IOErrors)
	}
}

// TestSourcesSpreadConnections checks that Config.Sources binds the connections to 127.0.0.2
// upward, slot by slot, and that a target they cannot reach is refused up front.
func TestSourcesSpreadConnections(t *testing.T) {
	s := startTestServer(t)
	res, err := runChecked(t, context.Background(), Config{
		Addr: s.addr(), Conns: 8, Sources: 4, Sizes: []int{64}, Pipeline: 1, Verify: true,
		Duration: 300 * time.Millisecond,
	})
	if err != nil || res.Established != 8 {
		t.Fatalf("Run: %v, %d established", err, res.Established)
	}
	seen := map[string]int{}
	s.mu.Lock()
	for c := range s.conns {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		seen[host]++
	}
	s.mu.Unlock()
	want := map[string]int{"127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2, "127.0.0.5": 2}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the server saw clients from %v, want %v", seen, want)
	}

	if _, err := Run(context.Background(), Config{Addr: "[::1]:7", Conns: 1, Sources: 4, Sizes: []int{64}, Pipeline: 1, Duration: time.Second}); err == nil {
		t.Error("Sources with an IPv6 target: no error")
	}
}

// TestMessagesEndsWindowExactly: with Config.Messages the window counts exactly that many echoes,
// however many workers complete them at once, and ends early; a limit the duration does not allow
// leaves the duration in charge.
func TestMessagesEndsWindowExactly(t *testing.T) {
	s := startTestServer(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"pingpong", Config{Conns: 8, Pipeline: 1, Workers: 1, Messages: 3000}},
		{"pipelined workers", Config{Conns: 12, Pipeline: 8, Workers: 3, Messages: 20011}},
		{"open loop", Config{Conns: 4, Pipeline: 2, Workers: 2, Rate: 4000, Messages: 999}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Addr, cfg.Sizes, cfg.Verify, cfg.Duration = s.addr(), []int{64}, true, 30*time.Second
			res, err := runChecked(t, context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Messages != uint64(cfg.Messages) {
				t.Errorf("%d messages in the window, want exactly %d", res.Messages, cfg.Messages)
			}
			if res.Elapsed <= 0 || res.Elapsed >= cfg.Duration {
				t.Errorf("window %v, want it ended by the message count well before %v", res.Elapsed, cfg.Duration)
			}
			var perSecond uint64
			for _, sec := range res.PerSecond {
				perSecond += sec.Messages
			}
			if perSecond != res.Messages || res.VerifyFailures != 0 {
				t.Errorf("per-second messages add up to %d of %d; %d verify failures", perSecond, res.Messages, res.VerifyFailures)
			}
			if cfg.Rate == 0 && res.Latency.TotalCount() != int64(res.Messages) {
				t.Errorf("%d latency samples for %d messages", res.Latency.TotalCount(), res.Messages)
			}
		})
	}
	t.Run("duration first", func(t *testing.T) {
		res, err := runChecked(t, context.Background(), Config{
			Addr: s.addr(), Conns: 2, Sizes: []int{64}, Pipeline: 1, Rate: 200, Messages: 1 << 40,
			Duration: 300 * time.Millisecond,
		})
		if err != nil || res.Messages == 0 || res.Messages >= 1<<40 || res.Elapsed != 300*time.Millisecond {
			t.Errorf("Run: %v, %d messages in %v; want the 300ms window to end the run", err, res.Messages, res.Elapsed)
		}
	})
}

// TestStartAt checks that a run given a start instant connects no earlier than it and opens its
// window at StartAt+Warmup, so that agents given the same instant measure the same window.
func TestStartAt(t *testing.T) {
	addr := startTestServer(t).addr()
	at := time.Now().Add(300 * time.Millisecond).Truncate(time.Millisecond)
	res, err := Run(context.Background(), Config{Addr: addr, Conns: 2, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond, StartAt: at})
	if err != nil {
		t.Fatal(err)
	}
	want := at.Add(200 * time.Millisecond)
	if res.WindowStart.Before(want) {
		t.Errorf("window opened at %v, before StartAt+Warmup %v", res.WindowStart, want)
	}
	if late := res.WindowStart.Sub(want); late-res.WindowLate > 5*time.Millisecond || res.WindowLate-late > 5*time.Millisecond {
		t.Errorf("window opened %v after StartAt+Warmup, but WindowLate says %v", late, res.WindowLate)
	}
	if res.Messages == 0 {
		t.Error("no echo in the window")
	}
}
