package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// badCase is one bad invocation of a binary.
type badCase struct {
	bin  string
	args []string
}

// badCases are what a user can get wrong, binary by binary (the make targets' variables are
// these flags: BENCH is echocompare's -bench, SYSCALLS_MESSAGES echosyscalls' -messages,
// FAULTSFLAGS, SOAKFLAGS and LESSONFLAGS go to echofaults and echolesson as they are): unknown
// names, bad and absurd numbers, targets that are not loopback or not there, a port in use, a
// results path that cannot be written. {busy} is a port in use, {out} a file holding earlier results, {ro} a
// directory no one can write (/proc), {bin} the directory of the binaries.
var badCases = []badCase{
	{"echoserver", []string{"-model", "nope"}},
	{"echoserver", []string{"-model", "epoll", "-no-such-flag"}},
	{"echoserver", []string{"-model", "epoll", "-loops", "-1"}},
	{"echoserver", []string{"-model", "epoll", "-outbound", "-5"}},
	{"echoserver", []string{"-model", "epoll", "-work", "soon"}},
	{"echoserver", []string{"-model", "epoll", "-block", "-1ms"}},
	{"echoserver", []string{"-model", "epoll", "-addr", "127.0.0.1:99999"}},
	{"echoserver", []string{"-model", "epoll", "-addr", "0.0.0.0:0"}},
	{"echoserver", []string{"-model", "epoll", "-addr", "{busy}"}},
	{"echoserver", []string{"-model", "select", "-udp"}},
	{"echoserver", []string{"-model", "epoll", "extra-arg"}},
	{"echobench", []string{"-model", "nope", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-c", "-1", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-c", "0", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-c", "99999999", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-size", "-5", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-size", "99999999999", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-d", "-1s", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-d", "forever", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-rate", "-10", "-o", "{out}"}},
	{"echobench", []string{"-addr", "192.0.2.1:7", "-o", "{out}"}},
	{"echobench", []string{"-addr", "127.0.0.1:1", "-d", "1s", "-warmup", "0", "-o", "{out}"}},
	{"echobench", []string{"-model", "stdnet", "-d", "1s", "-warmup", "0", "-o", "{ro}/result.json"}},
	{"echobench", []string{"-no-such-flag", "-o", "{out}"}},
	{"echocompare", []string{"-bench", "bogus"}},
	{"echocompare", []string{"-models", "nope"}},
	{"echocompare", []string{"-no-such-flag"}},
	{"echocompare", []string{"-o", "{ro}/results"}},
	{"echosyscalls", []string{"-messages", "-1"}},
	{"echosyscalls", []string{"-models", "nope"}},
	{"echofaults", []string{"-bin", "{bin}", "-scale", "huge"}},
	{"echofaults", []string{"-bin", "{bin}", "-models", "nope"}},
	{"echofaults", []string{"-bin", "{bin}", "-scenarios", "nope"}},
	{"echofaults", []string{"-bin", "{bin}", "-soak", "-soak-d", "1s"}},
	{"echofaults", []string{"-bin", "{bin}", "-o", "{ro}/results"}},
	{"echolesson", []string{"-bin", "{bin}", "-only", "99"}},
	{"echolesson", []string{"-no-such-flag"}},
}

func badInput() Scenario {
	return Scenario{
		Name: "bad-input",
		Rule: "every bad invocation of every binary: a non-zero exit, a message of at most two lines that says what to do, never a panic trace, and a results file written earlier left as it was",
		Fast: true,
		Once: true,
		Run: func(ctx context.Context, e *Env) Cell {
			if e.opts.BinDir == "" {
				return Cell{Verdict: NotApplicable, Figure: "no binaries", Detail: "make faults builds them into bin/"}
			}
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return failed(err)
			}
			defer busy.Close()
			dir, err := os.MkdirTemp("", "echofaults-")
			if err != nil {
				return failed(err)
			}
			defer os.RemoveAll(dir)
			earlier := []byte(`{"earlier": "results"}`)
			var problems []string
			checked := 0
			for _, c := range badCases {
				out := filepath.Join(dir, "earlier.json")
				if err := os.WriteFile(out, earlier, 0o644); err != nil {
					return failed(err)
				}
				args := make([]string, len(c.args))
				for i, a := range c.args {
					a = strings.ReplaceAll(a, "{busy}", busy.Addr().String())
					a = strings.ReplaceAll(a, "{out}", out)
					a = strings.ReplaceAll(a, "{bin}", e.opts.BinDir)
					args[i] = strings.ReplaceAll(a, "{ro}", "/proc")
				}
				if _, err := os.Stat(e.opts.bin(c.bin)); err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", c.bin, err))
					continue
				}
				checked++
				if p := badRun(ctx, e.opts.bin(c.bin), args); p != "" {
					problems = append(problems, fmt.Sprintf("%s %s: %s", c.bin, strings.Join(c.args, " "), p))
				}
				if b, _ := os.ReadFile(out); !bytes.Equal(b, earlier) {
					problems = append(problems, fmt.Sprintf("%s %s: overwrote the results written earlier", c.bin, strings.Join(c.args, " ")))
				}
			}
			v, why := judge(e, "bad-input", len(problems) == 0)
			return Cell{Verdict: v, Figure: fmt.Sprintf("%d/%d refused cleanly", checked-len(problems), len(badCases)),
				Detail: strings.Join(problems, "; ") + " " + why}
		},
	}
}

// badRun runs one bad invocation and says what is wrong with how it failed, or "".
func badRun(ctx context.Context, bin string, args []string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	msg := strings.TrimSpace(stderr.String())
	lines := strings.Count(msg, "\n") + 1
	switch {
	case ctx.Err() != nil:
		return "did not exit within 30 s"
	case err == nil:
		return "exit 0"
	case strings.Contains(msg, "panic:") || strings.Contains(msg, "goroutine "):
		return "a panic trace: " + firstLine(msg)
	case msg == "":
		return "no message"
	case lines > 2:
		return fmt.Sprintf("%d lines of message (first: %q)", lines, firstLine(msg))
	}
	return ""
}
