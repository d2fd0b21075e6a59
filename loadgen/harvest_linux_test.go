package loadgen

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"echobench/internal/procstat"
)

// startDelayServer is an echo server that holds every echo back by delay: a server slower than the
// client's wake-up, so that a meter which timed echoes at the wrong moment (at the harvest instead
// of the arrival, or with a wrongly converted clock) would report a different latency.
func startDelayServer(t *testing.T, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					time.Sleep(delay)
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestHarvestTimesEchoesLikeWakingForThem runs the same open-loop load against a server that
// answers 2 ms late, once in harvest mode and once waking for every echo, and checks that harvest
// mode really timed its echoes by the kernel's timestamps and reports the same latency. 20
// connections at 4,000 msgs/s put a send due every 250 µs, so harvest mode sleeps on the clock
// alone and reads each echo up to 250 µs after it arrived; with 5 ms between one connection's
// sends its window is free again long before its next turn. The tolerance is wide, and a pair
// that misses it is run again (up to three pairs): a loaded machine delays the server's sleep and
// either client's wakes, by milliseconds at times, and can only make one run of a pair slower. A
// clock converted wrongly would be off by far more in every pair, or fall back to the read's time
// and not count as kernel-timed. On a virtual machine whose host takes the CPUs away (steal), a
// pair with 1% or more of its wall time stolen says nothing about the meter and is not counted;
// if no pair in six was left alone, the test says so and skips.
func TestHarvestTimesEchoesLikeWakingForThem(t *testing.T) {
	const delay = 2 * time.Millisecond
	const tolerance = time.Millisecond
	const maxStealPct = 1.0 // report.StealSharePct, which loadgen cannot import
	addr := startDelayServer(t, delay)
	var diffs []time.Duration
	var stolen []float64
	for len(diffs) < 3 && len(diffs)+len(stolen) < 6 {
		began := time.Now()
		steal0, stealErr := procstat.ReadSteal()
		p50 := map[bool]time.Duration{}
		for _, wakeOnEcho := range []bool{false, true} {
			res, err := runChecked(t, context.Background(), Config{
				Addr: addr, Conns: 20, Sizes: []int{64}, Pipeline: 1, Rate: 4000, Verify: true,
				Warmup: 200 * time.Millisecond, Duration: time.Second, WakeOnEcho: wakeOnEcho,
			})
			if err != nil {
				t.Fatalf("WakeOnEcho %v: Run: %v", wakeOnEcho, err)
			}
			if res.Messages < 4000*7/10 || res.VerifyFailures != 0 {
				t.Fatalf("WakeOnEcho %v: %d messages, %d verify failures in 1 s at 4000/s", wakeOnEcho, res.Messages, res.VerifyFailures)
			}
			completed := res.TotalReceived / 64
			if wakeOnEcho && res.KernelTimed != 0 {
				t.Errorf("WakeOnEcho: %d echoes kernel-timed; want 0", res.KernelTimed)
			}
			if !wakeOnEcho && res.KernelTimed < completed*9/10 {
				t.Errorf("harvest mode: %d of %d echoes kernel-timed; want nearly all", res.KernelTimed, completed)
			}
			p50[wakeOnEcho] = time.Duration(res.Latency.ValueAtQuantile(50)) * time.Microsecond
			t.Logf("WakeOnEcho %v: %d messages, p50 %v, p99 %v, schedule lag p99 %v µs, kernel-timed %d", wakeOnEcho,
				res.Messages, p50[wakeOnEcho], time.Duration(res.Latency.ValueAtQuantile(99))*time.Microsecond,
				res.ScheduleLag.ValueAtQuantile(99), res.KernelTimed)
			if p50[wakeOnEcho] < delay {
				t.Errorf("WakeOnEcho %v: p50 %v is below the server's own delay %v", wakeOnEcho, p50[wakeOnEcho], delay)
			}
		}
		d := p50[false] - p50[true]
		if d <= tolerance && d >= -tolerance {
			return
		}
		if steal1, err := procstat.ReadSteal(); stealErr == nil && err == nil {
			pct := float64(steal1.On(nil)-steal0.On(nil)) / float64(time.Since(began)*time.Duration(len(steal1))) * 100
			if pct >= maxStealPct {
				t.Logf("the hypervisor took %.1f%% of the CPUs during this pair: not counted", pct)
				stolen = append(stolen, pct)
				continue
			}
		}
		diffs = append(diffs, d)
	}
	if len(diffs) < 3 {
		t.Skipf("the hypervisor took %.1f%% of the CPUs in %d of %d pairs: latencies here measure the host, not the meter", stolen, len(stolen), len(stolen)+len(diffs))
	}
	t.Errorf("harvest p50 minus wake-on-echo p50: %v in three pairs; want within ±%v in one", diffs, tolerance)
}

// TestHarvestModeOnlyWhereExact checks that harvest mode is used only where a read's timestamp
// belongs to exactly one message: open loop with one message in flight per connection.
func TestHarvestModeOnlyWhereExact(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{Rate: 1000, Pipeline: 1}, true},
		{Config{Rate: 1000, Pipeline: 1, WakeOnEcho: true}, false},
		{Config{Rate: 1000, Pipeline: 2}, false}, // a read may span two echoes: the first would be stamped late
		{Config{Rate: 0, Pipeline: 1}, false},    // closed loop sends on echoes, so it must wake for them
	} {
		if got := harvestMode(&tc.cfg); got != tc.want {
			t.Errorf("harvestMode(rate %d, pipeline %d, wake on echo %v) = %v; want %v",
				tc.cfg.Rate, tc.cfg.Pipeline, tc.cfg.WakeOnEcho, got, tc.want)
		}
	}
}

// TestSleepUntilKeepsTheEngineClock checks the absolute deadline of harvest mode's sleep: the
// engine's clock converted to CLOCK_MONOTONIC by monotonicOffset. A wrong offset would end the
// sleeps early (each wake would find nothing due and sleep again) or late (every send late by it).
// The sleep may end late on a busy machine, so only an early end, or one later than any
// scheduling delay, fails.
func TestSleepUntilKeepsTheEngineClock(t *testing.T) {
	sh := &shared{clock: measureClock{base: time.Now()}}
	var err error
	if sh.monoOffset, err = monotonicOffset(sh.clock); err != nil {
		t.Fatal(err)
	}
	w := &worker{sh: sh}
	for range 20 {
		at := sh.clock.now() + int64(200*time.Microsecond)
		w.sleepUntil(at)
		woke := sh.clock.now()
		// An interruption by a signal (the runtime's preemption) may end it early; the offset is
		// exact to a clock read, far less than this slack.
		if early := at - woke; early > int64(time.Microsecond) {
			t.Logf("woke %v before the deadline (a signal may end it early)", time.Duration(early))
			continue
		}
		if late := woke - at; late > int64(time.Second) {
			t.Fatalf("woke %v after the deadline: the offset between the clocks is wrong", time.Duration(late))
		}
		return
	}
	t.Fatal("20 sleeps in a row ended early: the offset between the clocks is wrong")
}
