package nonblocking_test

import (
	"testing"
	"time"

	"echobench/internal/procstat"
	"echobench/models/modeltest"
	"echobench/server"
)

// TestHandler checks -work and -block inline on the one busy-polling loop, where a handler that
// blocks holds back every other connection.
func TestHandler(t *testing.T) {
	modeltest.CheckHandler(t, "nonblocking", modeltest.HandlerOptions{OneLoop: true})
}

// testPollSleep is the -poll-sleep the tests below run with.
const testPollSleep = 5 * time.Millisecond

// TestConformancePollSleep runs the suite with -poll-sleep: sleeping after idle passes must not
// change what the server echoes, only when.
func TestConformancePollSleep(t *testing.T) {
	modeltest.Run(t, "nonblocking", modeltest.Options{Config: server.Config{PollSleep: testPollSleep}})
}

// idleConns is how many idle connections the CPU test holds open: each costs a read that
// returns EAGAIN on every pass, so an idle pass is not free.
const idleConns = 10

// maxIdleShare bounds the CPU an idle server with -poll-sleep may use, as a share of one core. An
// idle pass over a few connections takes microseconds and is followed by a sleep of
// milliseconds, so the share is around a hundredth; the bound leaves a wide margin for -race and
// a busy machine, and is still far below the whole core busy polling takes when it gets one.
const maxIdleShare = 0.25

// TestPollSleepIdleCPU checks what -poll-sleep is for: an idle server that sleeps after each pass
// that found nothing uses a small share of a core, where the busy-polling one takes all the
// scheduler gives it.
func TestPollSleepIdleCPU(t *testing.T) {
	const window = time.Second
	sleeping := idleShare(t, server.Config{PollSleep: testPollSleep}, window)
	busy := idleShare(t, server.Config{}, window/2)
	t.Logf("CPU over an idle interval with %d connections: %.1f%% of one core with -poll-sleep %v, %.1f%% busy polling",
		idleConns, 100*sleeping, testPollSleep, 100*busy)
	if sleeping > maxIdleShare {
		t.Errorf("with -poll-sleep %v an idle server used %.1f%% of one core, want at most %.0f%%", testPollSleep, 100*sleeping, 100*maxIdleShare)
	}
}

// idleShare starts the model with cfg, echoes once on each of idleConns connections, and returns
// the CPU this process used over the idle window that follows, as a share of one core.
func idleShare(t *testing.T, cfg server.Config, window time.Duration) float64 {
	t.Helper()
	srv := modeltest.Start(t, "nonblocking", cfg)
	defer srv.Close()
	for i := range idleConns {
		c, err := modeltest.Dial(srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := modeltest.Echo(c, i, 0, 100); err != nil {
			t.Fatal(err)
		}
	}
	before, err := procstat.Self()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(window)
	after, err := procstat.Self()
	if err != nil {
		t.Fatal(err)
	}
	return float64(after.CPU()-before.CPU()) / float64(time.Since(start))
}
