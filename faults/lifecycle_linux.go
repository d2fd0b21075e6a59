package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"echobench/internal/procstat"
)

func killMidRun() Scenario {
	return Scenario{
		Name: "kill-9-mid-run",
		Rule: "kill -9 of the server during an echobench run: echobench exits non-zero, names the cause, and writes its partial results",
		Run: func(ctx context.Context, e *Env) Cell {
			if e.opts.bin("echobench") == "" {
				return Cell{Verdict: NotApplicable, Figure: "no echobench binary", Detail: "run by make faults, which builds bin/echobench"}
			}
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			dir, err := os.MkdirTemp("", "echofaults-")
			if err != nil {
				return failed(err)
			}
			defer os.RemoveAll(dir)
			out := filepath.Join(dir, "partial.json")
			cmd := exec.CommandContext(ctx, e.opts.bin("echobench"), "-addr", srv.Addr, "-server-pid", strconv.Itoa(srv.PID),
				"-pin=false", "-c", "20", "-d", "10s", "-warmup", "0", "-o", out)
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, io.Discard
			if err := cmd.Start(); err != nil {
				return failed(err)
			}
			time.Sleep(1500 * time.Millisecond)
			syscall.Kill(srv.PID, syscall.SIGKILL) // our own child, by pid
			werr := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			msg := lastLine(stderr.String())
			var partial struct {
				Messages uint64 `json:"messages"`
			}
			b, rerr := os.ReadFile(out)
			jerr := json.Unmarshal(b, &partial)
			named := strings.Contains(strings.ToLower(stderr.String()), "server") || strings.Contains(stderr.String(), "ECONNRESET")
			ok := code > 0 && named && rerr == nil && jerr == nil
			v, why := judge(e, "kill-9-mid-run", ok)
			return Cell{Verdict: v,
				Figure: fmt.Sprintf("exit %d, partial JSON: %v", code, rerr == nil && jerr == nil),
				Detail: fmt.Sprintf("echobench: %v; its last line: %q; the partial result holds %d messages. %s", werr, msg, partial.Messages, why)}
		},
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func sigterm() Scenario {
	return Scenario{
		Name: "sigterm",
		Rule: "SIGTERM with clients connected: the server stops accepting, closes its connections and exits 0 within a second",
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			conns, _ := dialMany(srv.Addr, 5) // within any pool the rows have
			defer closeAll(conns)
			ok, _ := served(conns, 5*time.Second)
			start := time.Now()
			exit := srv.Stop(time.Second)
			took := time.Since(start)
			ended := 0
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					ended++
				}
			}
			_, dialErr := net.DialTimeout("tcp", srv.Addr, time.Second)
			good := exit.Code == 0 && !exit.Killed && took <= time.Second && ended == len(conns) && dialErr != nil && ok == len(conns)
			v, why := judge(e, "sigterm", good)
			return Cell{Verdict: v,
				Figure: fmt.Sprintf("%s in %v, %d/%d closed", exit.Status, took.Round(time.Millisecond), ended, len(conns)),
				Detail: fmt.Sprintf("killed after the grace: %v; a new connection after exit: %v. %s", exit.Killed, dialErr, why)}
		},
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func preforkWorker() Scenario {
	return Scenario{
		Name: "prefork-worker-killed",
		Rule: "kill -9 of one prefork worker: the pool replaces it within 3 s and keeps echoing",
		Run: func(ctx context.Context, e *Env) Cell {
			if e.Row.Model != "process" || len(e.Row.Args) == 0 {
				return Cell{Verdict: NotApplicable, Figure: "no prefork pool", Detail: "only the process model's prefork pool has workers to replace"}
			}
			srv, err := e.start()
			if err != nil {
				return failed(err)
			}
			workers, err := procstat.Children(srv.PID)
			if err != nil || len(workers) == 0 {
				return failed(fmt.Errorf("no workers under pid %d: %v", srv.PID, err))
			}
			victim := workers[0]
			syscall.Kill(victim, syscall.SIGKILL) // a worker of our own child, by pid
			var now []int
			replaced := false
			start := time.Now()
			for time.Since(start) < 3*time.Second {
				now, _ = procstat.Children(srv.PID)
				if len(now) == len(workers) && !slices.Contains(now, victim) {
					replaced = true
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			took := time.Since(start)
			aliveErr := alive(srv)
			v, why := judge(e, "prefork-worker-killed", replaced && aliveErr == nil)
			return Cell{Verdict: v,
				Figure: fmt.Sprintf("%d workers, replaced: %v in %v", len(workers), replaced, took.Round(time.Millisecond)),
				Detail: fmt.Sprintf("killed worker %d; workers after: %v; echo after: %v. %s", victim, now, aliveErr, why)}
		},
	}
}
