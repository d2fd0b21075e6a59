// Package multihost runs one echo server and several echobench agents in network namespaces
// joined by a bridge, standing in for hosts, and merges the agents' reports: the multi-host path
// of echobench (-start-at, echobench merge) tested on one machine. Every address is in
// 198.18.0.0/15, the range reserved for benchmark testing, inside namespaces this package
// creates and deletes; no traffic leaves them.
package multihost

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"echobench/internal/child"
	"echobench/report"
	"echobench/server"
)

// Options say what to run.
type Options struct {
	Bin      string // directory with echoserver and echobench
	Dir      string // where the agents' reports go
	Agents   int
	Conns    int // per agent
	Duration time.Duration
	Model    string
}

// Result is what a run measured.
type Result struct {
	Merged  *report.Report
	Differ  []string     // what merge said about the agents' settings and windows
	Server  server.Stats // the server's own final counts
	Reports []string     // each agent's report file
}

// Net is the namespaces of one run: a hub holding the bridge, the server's and each agent's.
type Net struct {
	prefix string
	spaces []string
}

// Available says why namespaces cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("creating network namespaces needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip command (iproute2)")
	}
	return nil
}

// ip runs one ip(8) command.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Build makes the hub with its bridge and n+1 namespaces (the server first), each joined to the
// bridge by a veth pair and given 198.18.0.(i+1)/24. Close deletes every one, also after a
// failure part way.
func Build(n int) (*Net, error) {
	nw := &Net{prefix: fmt.Sprintf("eb%d", os.Getpid()%100000)}
	hub := nw.prefix + "hub"
	if err := nw.add(hub); err != nil {
		return nw, err
	}
	steps := [][]string{
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"-n", hub, "link", "set", "lo", "up"},
	}
	for i := range n + 1 {
		ns := fmt.Sprintf("%sh%d", nw.prefix, i)
		if err := nw.add(ns); err != nil {
			return nw, err
		}
		hubEnd, nsEnd := fmt.Sprintf("v%d", i), "eth0"
		steps = append(steps,
			[]string{"-n", hub, "link", "add", hubEnd, "type", "veth", "peer", "name", nsEnd, "netns", ns},
			[]string{"-n", hub, "link", "set", hubEnd, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", Addr(i) + "/24", "dev", nsEnd},
			[]string{"-n", ns, "link", "set", nsEnd, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return nw, err
		}
	}
	return nw, nil
}

func (nw *Net) add(ns string) error {
	if err := ip("netns", "add", ns); err != nil {
		return err
	}
	nw.spaces = append(nw.spaces, ns)
	return nil
}

// Host is the name of namespace i (0 is the server).
func (nw *Net) Host(i int) string { return fmt.Sprintf("%sh%d", nw.prefix, i) }

// Addr is host i's address.
func Addr(i int) string { return fmt.Sprintf("198.18.0.%d", i+1) }

// Close deletes every namespace this Net made; their veths and the bridge go with them.
func (nw *Net) Close() error {
	var errs []error
	for _, ns := range nw.spaces {
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	nw.spaces = nil
	return errors.Join(errs...)
}

// Run starts the server in host 0 and o.Agents agents in the others, all told one -start-at,
// merges their reports, and asks the server for its own counts.
func Run(ctx context.Context, nw *Net, o Options) (*Result, error) {
	port := "7000"
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", nw.Host(0), filepath.Join(o.Bin, "echoserver"),
		"-model", o.Model, "-addr", Addr(0)+":"+port, "-allow-remote", "-quiet")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return nil, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }() // our own child, by its handle
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		return nil, errors.New("the server printed no address")
	}
	addr, err := child.ParseAddr(lines.Text())
	if err != nil {
		return nil, err
	}
	stats := make(chan server.Stats, 4)
	go func() {
		for lines.Scan() {
			if st, ok := child.ParseStats(lines.Text()); ok {
				stats <- st
			}
		}
	}()
	// Far enough ahead for every agent to start; a late one says so, and merge reports it.
	startAt := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	res := &Result{}
	agents := make([]*exec.Cmd, o.Agents)
	for i := range o.Agents {
		file := filepath.Join(o.Dir, fmt.Sprintf("agent-%d.json", i+1))
		res.Reports = append(res.Reports, file)
		agents[i] = exec.CommandContext(ctx, "ip", "netns", "exec", nw.Host(i+1), filepath.Join(o.Bin, "echobench"),
			"-addr", addr, "-allow-remote", "-pin=false", "-c", fmt.Sprint(o.Conns), "-d", o.Duration.String(),
			"-warmup", "1s", "-sources", "0", "-start-at", startAt, "-o", file)
		if err := agents[i].Start(); err != nil {
			return nil, fmt.Errorf("start agent %d: %w", i+1, err)
		}
	}
	for i, a := range agents {
		if err := a.Wait(); err != nil {
			return nil, fmt.Errorf("agent %d: %w", i+1, err)
		}
	}
	var reps []*report.Report
	for _, f := range res.Reports {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		reps = append(reps, &r)
	}
	if res.Merged, res.Differ, err = report.Merge(reps); err != nil {
		return nil, err
	}
	// The server's counts, once every agent has closed: SIGTERM makes it print its final ones.
	srv.Process.Signal(syscall.SIGTERM)
	select {
	case res.Server = <-stats:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the server printed no final counts")
	}
	return res, nil
}
