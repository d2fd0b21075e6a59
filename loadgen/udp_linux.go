package loadgen

// The UDP engine's run: the same shape as the TCP engine's (run in engine_linux.go), Workers event
// loops on locked threads, a window published to them once they are going, and the same merge;
// the loops themselves are in udpworker_linux.go. README.md, "UDP", is the measurement model.

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// udpScanDivisor sets how often a worker looks for datagrams past their timeout: every
// UDPTimeout/udpScanDivisor, so a datagram counts as lost between its timeout and an eighth of it
// later. A scan walks the worker's flows, so it is not run on every wake.
const udpScanDivisor = 8

// normalizeUDP checks the parts of cfg that differ for UDP; the size limit that depends on the
// address family is checked once the address is resolved (CheckUDPSize).
func normalizeUDP(cfg *Config) error {
	switch {
	case cfg.Frame:
		return errors.New("loadgen: Frame is TCP's: a UDP datagram keeps its boundaries and carries its own header")
	case cfg.Reconnect > 0:
		return errors.New("loadgen: Reconnect is TCP's: a UDP flow has no connection to set up")
	case cfg.Sources > 0:
		return errors.New("loadgen: Sources is TCP's (a port limit of new connections); use Sources 0 with UDP")
	case cfg.UDPTimeout < 0:
		return fmt.Errorf("loadgen: UDP timeout %v; want > 0", cfg.UDPTimeout)
	}
	if cfg.UDPTimeout == 0 {
		cfg.UDPTimeout = DefaultUDPTimeout
	}
	for _, s := range cfg.Sizes {
		if err := CheckUDPSize(s, false); err != nil {
			return err
		}
	}
	return nil
}

// CheckUDPSize says why size cannot be one UDP datagram's payload to an IPv4 (ipv4) or IPv6
// target, or returns nil.
func CheckUDPSize(size int, ipv4 bool) error {
	limit, family, why := MaxDatagramIPv6, "IPv6", "65,535 less the 8-byte UDP header"
	if ipv4 {
		limit, family, why = MaxDatagramIPv4, "IPv4", "65,535 less the 20-byte IP and 8-byte UDP headers"
	}
	switch {
	case size < 0:
		return fmt.Errorf("size %d: a datagram has 0 bytes or more", size)
	case size > limit:
		return fmt.Errorf("size %d does not fit one UDP datagram: over %s one carries at most %d bytes (%s); use -size %d or less, or TCP for larger messages", size, family, limit, why, limit)
	}
	return nil
}

// udpCounts are a UDP worker's counts beyond workerStats: the fate of the datagrams sent in the
// window (their cohort), the echoes that were wrong in one way or another, and the run's totals.
type udpCounts struct {
	sent, echoed, timedOut, late     uint64 // the cohort
	duplicated, reordered, corrupted uint64 // echoes arriving in the window
	datagramsSent, datagramsReceived uint64 // the whole run
}

// runUDP is Run for Config.UDP.
func runUDP(ctx context.Context, cfg Config) (*Result, error) {
	sh, err := newShared(cfg)
	if err != nil {
		return nil, err
	}
	for _, s := range cfg.Sizes {
		if err := CheckUDPSize(s, sh.family == unix.AF_INET); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
	}
	defer spareP(cfg.Workers)()

	live := make([]liveCounters, cfg.Workers)
	workers := make([]*udpWorker, 0, cfg.Workers)
	defer func() {
		for _, w := range workers {
			w.closeFDs()
		}
	}()
	for i := range cfg.Workers {
		w, err := newUDPWorker(sh, slotsOf(i, cfg), &live[i])
		if err != nil {
			return nil, fmt.Errorf("loadgen: worker %d: %w", i, err)
		}
		workers = append(workers, w)
	}
	// Every flow's schedule counts from here, so the workers' schedules interleave as the TCP
	// engine's connections' do.
	scheduleBase := sh.clock.now()
	for _, w := range workers {
		w.scheduleBase = scheduleBase
	}
	interrupted := drive(ctx, sh, asEngineWorkers(workers), live)
	res, errs := collect(sh, asEngineWorkers(workers))
	var udp udpCounts
	for _, w := range workers {
		udp.add(w.udp)
	}
	res.DatagramsSent, res.DatagramsEchoed = udp.sent, udp.echoed
	res.TimedOut, res.Late, res.Lost = udp.timedOut, udp.late, udp.timedOut-udp.late
	res.Duplicated, res.Reordered, res.Corrupted = udp.duplicated, udp.reordered, udp.corrupted
	res.TotalDatagramsSent, res.TotalDatagramsReceived = udp.datagramsSent, udp.datagramsReceived
	res.Unmatched = !matchBySeq(cfg.Sizes)

	switch {
	case interrupted:
		errs = append(errs, fmt.Errorf("loadgen: run interrupted after %v of the measured window: %w", res.Elapsed, ctx.Err()))
	case res.Established == 0:
		errs = append(errs, fmt.Errorf("loadgen: no UDP socket toward %s could be opened (%s)", cfg.Addr, countsString(res.ConnectErrors)))
	case res.ServerGone:
		errs = append(errs, fmt.Errorf("loadgen: every UDP flow to %s failed mid-run (%s)", cfg.Addr, countsString(res.IOErrors)))
	case res.TotalDatagramsReceived == 0:
		errs = append(errs, fmt.Errorf("loadgen: not one of %d datagrams sent to %s came back (%s); is a UDP echo server listening there (echoserver -udp)?",
			res.TotalDatagramsSent, cfg.Addr, countsString(res.IOErrors)))
	}
	return res, errors.Join(errs...)
}

func (c *udpCounts) add(o udpCounts) {
	c.sent += o.sent
	c.echoed += o.echoed
	c.timedOut += o.timedOut
	c.late += o.late
	c.duplicated += o.duplicated
	c.reordered += o.reordered
	c.corrupted += o.corrupted
	c.datagramsSent += o.datagramsSent
	c.datagramsReceived += o.datagramsReceived
}

// matchBySeq reports whether every datagram carries the whole header, so that echoes can be
// matched to what was sent by their sequence number.
func matchBySeq(sizes []int) bool {
	for _, s := range sizes {
		if s < udpHeaderLen {
			return false
		}
	}
	return true
}
