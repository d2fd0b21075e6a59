package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"echobench/internal/child"
	"echobench/report"
	"echobench/server"
)

// SoakOptions say how long and how wide `make soak` runs.
type SoakOptions struct {
	Conns    int           // connections per model, where the model can hold them
	Duration time.Duration // measured window; the flatness checks look at its second half
}

// SoakScenario describes the soak for the report's legend; Soak runs it.
func SoakScenario(conns int, d time.Duration) Scenario {
	return Scenario{Name: "soak", Rule: fmt.Sprintf("%d connections (or the most the row can hold) echo 64 B ping-pong for %v: not one byte lost or wrong "+
		"(echobench's whole-run counts equal the server's own), and RSS (within 5 %% or 4 MiB), fds, threads and goroutines flat over the second half", conns, d)}
}

// soakConns is how many connections a row can hold here, and why it is fewer than asked.
func soakConns(r Row, want int) (int, string) {
	switch r.Name {
	case "select":
		return min(want, 1000), "select(2) watches fds below 1024 only"
	case "blocking":
		return min(want, 8900), "the thread ceiling is 9,000 (models/blocking)"
	case "process":
		return min(want, 2000), "a Go process per connection: 10,000 would need about 20 GiB on this machine"
	case "process/prefork":
		return 128, "the pool serves 128 at a time (-pool=128)"
	}
	return want, ""
}

// soakSample is one look at the server during a soak.
type soakSample struct {
	at                time.Duration
	rss               uint64
	fds, threads, gor int
}

// Soak runs every row for o.Duration at its largest connection count, closed-loop 64 B
// ping-pong through echobench, and judges: no byte lost or wrong (echobench's whole-run counts
// against the server's own), and RSS, fds, threads and goroutines flat over the second half.
func Soak(ctx context.Context, rows []Row, o SoakOptions, env EnvOptions, progress io.Writer) []Cell {
	var cells []Cell
	for _, r := range rows {
		if ctx.Err() != nil {
			break
		}
		if r.Name == "process/prefork" {
			r.Args = []string{"-pool=128"}
		}
		start := time.Now()
		e := newEnv(r, Full, env)
		c := soakOne(ctx, e, o)
		e.cleanup()
		c.Row, c.Scenario, c.Took = r.Name, "soak", time.Since(start)
		cells = append(cells, c)
		if progress != nil {
			fmt.Fprintf(progress, "soak: %-16s %-20s %s (%.0fs)\n", r.Name, c.Verdict, c.Figure, c.Took.Seconds())
		}
	}
	return cells
}

func soakOne(ctx context.Context, e *Env, o SoakOptions) Cell {
	bin := e.opts.bin("echobench")
	if bin == "" {
		return Cell{Verdict: NotApplicable, Figure: "no echobench binary", Detail: "make soak builds bin/echobench"}
	}
	conns, why := soakConns(e.Row, o.Conns)
	// The window opens after the ramp (connects at 5,000 a second) and the warmup; a process per
	// connection starts its children about a hundred a second, so its warmup covers that.
	warmup := 5 * time.Second
	if e.Row.Name == "process" {
		warmup = max(warmup, time.Duration(conns/100)*time.Second)
	}

	srv, err := e.start()
	if err != nil {
		return failed(err)
	}
	dir, err := os.MkdirTemp("", "echosoak-")
	if err != nil {
		return failed(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "soak.json")
	cmd := exec.CommandContext(ctx, bin, "-addr", srv.Addr, "-server-pid", strconv.Itoa(srv.PID), "-c", strconv.Itoa(conns),
		"-d", o.Duration.String(), "-warmup", warmup.String(), "-connect-rate", "5000", "-o", out)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return failed(err)
	}
	// Sample once a second until echobench is done.
	var samples []soakSample
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	begin := time.Now()
	tick := time.NewTicker(time.Second)
	var runErr error
sampling:
	for {
		select {
		case runErr = <-done:
			break sampling
		case <-tick.C:
			s := soakSample{at: time.Since(begin)}
			if t, err := tree(srv.PID); err == nil {
				s.rss, s.threads = t.RSSBytes, t.Threads
			}
			s.fds, _ = openFDs(srv.PID)
			if st, err := srv.RequestStats(500 * time.Millisecond); err == nil {
				s.gor = st.Goroutines // 0, and left out of the goroutine span, when it did not answer in time
			}
			samples = append(samples, s)
		}
	}
	tick.Stop()
	var rep report.Report
	b, rerr := os.ReadFile(out)
	if rerr == nil {
		rerr = json.Unmarshal(b, &rep)
	}
	if rerr != nil {
		return failed(fmt.Errorf("echobench wrote no result (%v): %w", runErr, rerr))
	}
	// The server counts the last echoes as its threads or loops see echobench's connections
	// close: wait for its counts to stop moving (thousands of threads take a while to wake).
	st, err := settledStats(srv, 20*time.Second)
	if err != nil {
		return failed(err)
	}
	sum := rep.Summary
	// Every byte echobench sent came back to it unless it was in flight when echobench closed
	// after its drain (loadgen's drainTimeout): at ping-pong at most one message per connection,
	// somewhere between the two (a close with unread data is a reset, which discards what the
	// kernel still held on either side). What the server counts lies between the two ends.
	inFlight := sum.BytesSentTotal - min(sum.BytesSentTotal, sum.BytesReceivedTotal)
	bytesOK := sum.VerifyFailuresTotal == 0 && inFlight <= uint64(conns)*soakSize &&
		sum.BytesReceivedTotal <= st.BytesOut && st.BytesOut <= st.BytesIn && st.BytesIn <= sum.BytesSentTotal
	// The second half of the measured window: ramp and warmup are over and the load is steady.
	// The window opened after echobench's ramp and warmup; a second's margin at its end keeps
	// the drain and the closing of every connection out.
	rampUp := time.Duration(0)
	if len(rep.Runs) > 0 {
		rampUp = time.Duration(rep.Runs[0].Conns.RampUpS * float64(time.Second))
	}
	windowStart := rampUp + warmup
	var last []soakSample
	for _, s := range samples {
		if s.at >= windowStart+o.Duration/2 && s.at <= windowStart+o.Duration-2*time.Second {
			last = append(last, s)
		}
	}
	rssLo, rssHi, fdLo, fdHi, thLo, thHi, gLo, gHi := spans(last)
	flat := len(last) >= 5 &&
		rssHi-rssLo <= max(rssHi/20, 4<<20) && // 5 % or 4 MiB: the Go heap breathes, it must not climb
		fdHi-fdLo <= 2 && thHi-thLo <= max(thHi/50, 2) && gHi-gLo <= max(gHi/50, 2)
	ok := runErr == nil && bytesOK && flat && sum.ConnsEstablished >= conns
	v, lim := judge(e, "soak", ok)
	if v == Limitation && !(runErr == nil && bytesOK && sum.ConnsEstablished >= conns) {
		v, lim = Breaks, "" // the limitation is growth or a slow start; bytes must be exact for every row
	}
	// When the server's fds first reached the connection count: how long it took to take them all.
	served := "never"
	for _, s := range samples {
		if s.fds >= conns {
			served = s.at.Round(time.Second).String()
			break
		}
	}
	detail := fmt.Sprintf("%d connections%s for %v: %.0f msgs/s; echobench sent %d and received %d bytes, the server read %d and wrote %d (%d in flight when echobench closed), %d wrong echoes; over the last %v: RSS %s-%s, fds %d-%d, threads %d-%d, goroutines %d-%d (%d samples); its fd count reached %d (the connections, about) %s after echobench started; echobench: %v. %s",
		sum.ConnsEstablished, paren(why), o.Duration, sum.MsgsPerSec, sum.BytesSentTotal, sum.BytesReceivedTotal, st.BytesIn, st.BytesOut, inFlight, sum.VerifyFailuresTotal,
		o.Duration/2, mib(rssLo), mib(rssHi), fdLo, fdHi, thLo, thHi, gLo, gHi, len(last), conns, served, runErr, lim)
	return Cell{Verdict: v,
		Figure: fmt.Sprintf("%d conns, %.0f msgs/s, bytes exact: %v, flat: %v", sum.ConnsEstablished, sum.MsgsPerSec, bytesOK, flat),
		Detail: detail}
}

// soakSize is the soak's message size (echobench's default).
const soakSize = 64

// settledStats asks for the server's counters until it has no connection left open and two
// answers half a second apart agree (a process per connection reports a connection's bytes when
// its child exits), or within has passed.
func settledStats(srv *child.Server, within time.Duration) (server.Stats, error) {
	last, err := statsOf(srv)
	for end := time.Now().Add(within); err == nil && time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		var now server.Stats
		if now, err = statsOf(srv); err == nil && now.Active == 0 && now.BytesIn == last.BytesIn && now.BytesOut == last.BytesOut {
			return now, nil
		}
		last = now
	}
	return last, err
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// spans returns the low and high of each series; a goroutine count of 0 is a sample whose stats
// request went unanswered, and is left out.
func spans(ss []soakSample) (rssLo, rssHi uint64, fdLo, fdHi, thLo, thHi, gLo, gHi int) {
	for i, s := range ss {
		if i == 0 {
			rssLo, rssHi, fdLo, fdHi, thLo, thHi = s.rss, s.rss, s.fds, s.fds, s.threads, s.threads
		}
		if gLo == 0 {
			gLo, gHi = s.gor, s.gor
		}
		rssLo, rssHi = min(rssLo, s.rss), max(rssHi, s.rss)
		fdLo, fdHi = min(fdLo, s.fds), max(fdHi, s.fds)
		thLo, thHi = min(thLo, s.threads), max(thHi, s.threads)
		if s.gor > 0 {
			gLo, gHi = min(gLo, s.gor), max(gHi, s.gor)
		}
	}
	return
}
