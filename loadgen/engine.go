package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// How the engine measures (README.md says the same at more length):
//
//   - Closed loop (Rate 0): each connection keeps Pipeline messages in flight and sends the next
//     one as soon as an echo completes. Latency runs from the moment a message is queued for
//     writing to the arrival of its last echoed byte.
//   - Open loop (Rate > 0), as in wrk2: each connection has a schedule of intended send times,
//     Rate/Conns per second, at phases that space the run's sends evenly (slotPhase). A message
//     whose turn comes while the connection already has Pipeline messages in flight goes out
//     late, as soon as a slot frees.
//     Latency is recorded from the intended time (coordinated omission corrected) and, in
//     Uncorrected, from the actual send.
//   - Only completions inside the measured window (after Warmup, for Duration) count. Warmup
//     starts when every connection of the initial ramp has connected or failed. What was due in
//     the window but had not completed at its end counts in Incomplete and, in open loop, goes
//     into Latency with its latency up to the end, so a stall cannot vanish.
//
// The engine is Workers event loops, each on its own locked OS thread, driving non-blocking
// sockets through epoll; see worker_linux.go for why it is not a goroutine per connection.

const (
	// maxPipeline bounds the per-connection ring of messages in flight (and so its memory:
	// Conns × Pipeline entries).
	maxPipeline = 1024
	// maxConns bounds the connection table of one run.
	maxConns = 1 << 20
	// defaultSize is the message size when Config.Sizes is empty.
	defaultSize = 64
)

// Run drives the load described by cfg against cfg.Addr and returns what it measured. It returns
// a Result even when it also returns an error (the server died mid-run, or ctx was cancelled): a
// partial result is still a result. Every socket is closed and every engine thread has finished
// before Run returns (a worker that ran on the process's main thread leaves that thread parked by
// the Go runtime, which never lets it end; see waitThreadsGone).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	if cfg.UDP {
		return runUDP(ctx, cfg)
	}
	return run(ctx, cfg)
}

// Check reports whether Run would refuse cfg, so that a front end can say so before it starts a
// server. The target address is not checked: a front end that starts its own server does not
// know it yet.
func Check(cfg Config) error {
	if cfg.Addr == "" {
		cfg.Addr = "to be known"
	}
	return normalize(&cfg) // on a copy: normalize fills in defaults
}

// normalize fills defaults and rejects configurations the engine cannot run.
func normalize(cfg *Config) error {
	if cfg.Addr == "" {
		return errors.New("loadgen: no target address")
	}
	if cfg.Conns <= 0 || cfg.Conns > maxConns {
		return fmt.Errorf("loadgen: %d connections; want 1..%d", cfg.Conns, maxConns)
	}
	if cfg.Duration <= 0 {
		return fmt.Errorf("loadgen: measured duration %v; want > 0", cfg.Duration)
	}
	if cfg.Warmup < 0 || cfg.ConnectRate < 0 || cfg.Rate < 0 || cfg.Reconnect < 0 || cfg.Workers < 0 || cfg.Messages < 0 {
		return errors.New("loadgen: negative warmup, connect rate, rate, reconnect, workers or messages")
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = 1
	}
	if cfg.Pipeline < 0 || cfg.Pipeline > maxPipeline {
		return fmt.Errorf("loadgen: pipeline %d; want 1..%d", cfg.Pipeline, maxPipeline)
	}
	if len(cfg.Sizes) == 0 {
		cfg.Sizes = []int{defaultSize}
	}
	cfg.Sizes = append([]int(nil), cfg.Sizes...)
	if cfg.UDP {
		if err := normalizeUDP(cfg); err != nil {
			return err
		}
	} else if err := checkTCPSizes(cfg); err != nil {
		return err
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	// A loop without connections would only spin up a thread for nothing.
	cfg.Workers = min(cfg.Workers, cfg.Conns)
	return nil
}

// checkTCPSizes rejects message sizes the TCP engine cannot send.
func checkTCPSizes(cfg *Config) error {
	for _, s := range cfg.Sizes {
		if s <= 0 || s > 1<<30 {
			return fmt.Errorf("loadgen: message size %d; want 1..%d", s, 1<<30)
		}
		if cfg.Frame && s < frameHeaderLen {
			return fmt.Errorf("loadgen: message size %d is smaller than the %d-byte frame header; use -size %d or more with -frame", s, frameHeaderLen, frameHeaderLen)
		}
	}
	return nil
}

// measureClock is the engine's time base: nanoseconds since the run began, from Go's monotonic
// clock (a vDSO clock_gettime, no syscall).
type measureClock struct{ base time.Time }

func (c measureClock) now() int64 { return int64(time.Since(c.base)) }
