package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/child"
	"echobench/internal/reexec"
	"echobench/measure"
	"echobench/report"
)

// roleAgent is the reexec role in which this binary is one of -procs' processes: echobench itself
// (a test binary too), run with the arguments runProcs gives it.
const roleAgent = "echobench-agent"

func init() {
	reexec.Register(roleAgent, func(args []string) int { return run(args, os.Stdout, os.Stderr) })
}

// runProcs is -procs N: the load split over N echobench processes on this host, each within its
// own RLIMIT_NOFILE, so the client side is never the fd ceiling. With -model this process starts
// the server once; every agent is this binary against -addr, started together with -start-at,
// and their reports are merged exactly (report.Merge), then checked against the server's own
// counts when the server is ours.
//
// The agents are not given the server's pid or stats port: each would account the whole server's
// CPU against its own share of the load. This process accounts it once instead (measure.Watch),
// over the merged window, when it knows the server: it started it (-model), or was given
// -server-pid or -server-stats.
func runProcs(o *options, stdout, stderr io.Writer) int {
	var err error
	addr := o.addr
	var srv *child.Server
	if o.model != "" {
		var cpus []int
		if o.pin {
			if cpus, err = affinity.ParseList(o.serverCPUs); err != nil {
				fmt.Fprintf(stderr, "echobench: -server-cpus: %v\n", err)
				return exitUsage
			}
		}
		srv, err = child.Start(child.Options{Binary: o.serverBin, Model: o.model, Config: o.server, CPUs: cpus, Stderr: stderr})
		if err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			return exitFail
		}
		defer srv.Stop(o.stopGrace)
		addr = srv.Addr
	}
	dir, err := os.MkdirTemp("", "echobench-procs-")
	if err != nil {
		fmt.Fprintf(stderr, "echobench: %v\n", err)
		return exitFail
	}
	defer os.RemoveAll(dir)
	startAt := o.startAt
	if startAt == "" {
		// Far enough ahead for N processes to start and raise their fd limits.
		startAt = time.Now().Add(time.Second + 200*time.Millisecond*time.Duration(o.procs)).UTC().Format(time.RFC3339Nano)
	}
	var watch *measure.Watch
	switch {
	case srv != nil:
		watch = measure.WatchServer(srv.PID, "")
	case o.serverPID > 0 || o.serverStats != "":
		watch = measure.WatchServer(o.serverPID, o.serverStats)
	}
	if watch != nil {
		defer watch.Close()
	}
	var cmds []*exec.Cmd
	var parts []string
	for i := range o.procs {
		share := o.conns / o.procs
		if i < o.conns%o.procs {
			share++
		}
		part := filepath.Join(dir, fmt.Sprintf("proc-%d.json", i+1))
		parts = append(parts, part)
		args := []string{"-addr", addr, "-c", strconv.Itoa(share), "-start-at", startAt, "-o", part,
			"-d", o.duration.String(), "-warmup", o.warmup.String(), "-size", o.size,
			"-pipeline", strconv.Itoa(o.pipeline), "-rate", strconv.Itoa(o.rate / o.procs),
			"-connect-rate", strconv.Itoa(o.connectRate / o.procs), "-sources", strconv.Itoa(o.sources),
			"-workers", strconv.Itoa(o.workers), "-reconnect", strconv.Itoa(o.reconnect),
			fmt.Sprintf("-verify=%v", o.verify), fmt.Sprintf("-frame=%v", o.frame), fmt.Sprintf("-pin=%v", o.pin),
			"-client-cpus", o.clientCPUs, fmt.Sprintf("-allow-remote=%v", o.allowRemote)}
		if o.server.UDP {
			args = append(args, "-udp", "-udp-timeout", o.udpTimeout.String())
		}
		cmd, err := reexec.Command(roleAgent, args...)
		if err != nil {
			fmt.Fprintf(stderr, "echobench: -procs needs this binary to run again: %v\n", err)
			return exitFail
		}
		cmd.Stdout, cmd.Stderr = io.Discard, stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "echobench: start process %d of %d: %v\n", i+1, o.procs, err)
			return exitFail
		}
		cmds = append(cmds, cmd)
	}
	status := exitOK
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			fmt.Fprintf(stderr, "echobench: process %d of %d: %v\n", i+1, o.procs, err)
			status = exitFail
		}
	}
	var reps []*report.Report
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // said above: that process failed before writing
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(stderr, "echobench: %s: %v\n", p, err)
			return exitFail
		}
		reps = append(reps, &r)
	}
	if len(reps) == 0 {
		fmt.Fprintf(stderr, "echobench: no process of the %d wrote a report\n", o.procs)
		return exitFail
	}
	m, differ, err := report.Merge(reps)
	if err != nil {
		fmt.Fprintf(stderr, "echobench: merge the processes' reports: %v\n", err)
		return exitFail
	}
	m.Settings.Model = o.model
	for _, d := range differ {
		m.Warnings = append(m.Warnings, "the processes differ: "+d)
	}
	if watch != nil {
		// Once every agent has ended, so the series has a point after every window.
		start, end, messages := mergedWindow(m.Runs)
		sv := watch.Finish(start, end, messages)
		if sv == nil {
			m.Warnings = append(m.Warnings, "the server's process tree or stats port could not be read, so the merged report has no server cost")
		}
		m.SetMergedServer(sv)
	}
	if s := m.Summary; s.ConnsEchoed < s.ConnsEstablished {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%d of %d connections got no echo in the window: the server holds no more (its ceiling: its RLIMIT_NOFILE, a pool, select's 1,024), or served them late", s.ConnsEstablished-s.ConnsEchoed, s.ConnsEstablished))
	}
	if srv != nil {
		exit := srv.Stop(o.stopGrace)
		if st := exit.Stats; st != nil {
			sent, recv := m.Summary.BytesSentTotal, m.Summary.BytesReceivedTotal
			if st.BytesIn > sent || st.BytesOut > st.BytesIn || recv > st.BytesOut {
				m.Warnings = append(m.Warnings, fmt.Sprintf("byte check failed: the processes sent %d and received %d bytes; the server read %d and wrote %d", sent, recv, st.BytesIn, st.BytesOut))
			} else if st.BytesIn != sent || recv != st.BytesOut {
				fmt.Fprintf(stdout, "bytes: the server read %d of the %d sent (the rest went to connections it never accepted, or were in flight at the end) and wrote %d, of which the processes received %d\n", st.BytesIn, sent, st.BytesOut, recv)
			}
			fmt.Fprintf(stdout, "server: accepted %d, refused %d, read %d and wrote %d bytes (its own counts)\n", st.Accepted, st.Rejected, st.BytesIn, st.BytesOut)
		}
	}
	fmt.Fprintf(stdout, "%d processes, merged:\n", len(reps))
	m.WriteTable(stdout)
	if o.out != "" {
		if err := writeJSON(o.out, m); err != nil {
			fmt.Fprintf(stderr, "echobench: %v\n", err)
			return exitFail
		}
	}
	if m.Error != "" {
		status = exitFail
	}
	return status
}

// mergedWindow is the span from the earliest run's window open to the latest one's close, and the
// messages echoed in the runs' windows.
func mergedWindow(runs []report.Run) (start, end time.Time, messages uint64) {
	for _, r := range runs {
		if r.WindowStart.IsZero() {
			continue
		}
		if start.IsZero() || r.WindowStart.Before(start) {
			start = r.WindowStart
		}
		if r.WindowEnd.After(end) {
			end = r.WindowEnd
		}
		messages += r.Messages
	}
	return start, end, messages
}
