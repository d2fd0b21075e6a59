package lesson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"echobench/internal/child"
	"echobench/report"
	"echobench/server"
)

// ServerCPU is where every server the lesson starts itself runs, as echobench pins its -model
// children: the load (echobench, or the lesson's own clients) stays off that CPU.
const ServerCPU = 0

// stopGrace is how long a server the lesson started gets to exit after SIGTERM.
const stopGrace = 2 * time.Second

// tailBytes bounds the output of a command kept for the report: enough for its error message.
const tailBytes = 2000

// Lab is where experiments run: the binaries, the repository (for go test) and the run's
// directory of raw data.
type Lab struct {
	Bin  string    // directory holding echobench and echoserver
	Root string    // the repository, for go test
	Dir  string    // results/lesson-<UTC>/: raw data
	Go   string    // the go command
	Log  io.Writer // progress lines
}

// Trial is one experiment's run: it records every command it runs and every raw file it keeps,
// and stops everything at the experiment's budget.
type Trial struct {
	Lab
	ID       int
	ctx      context.Context
	commands []string
	raw      []string
}

// Context ends at the experiment's budget.
func (t *Trial) Context() context.Context { return t.ctx }

// Logf prints a progress line.
func (t *Trial) Logf(format string, args ...any) {
	fmt.Fprintf(t.Log, "lesson %d: %s\n", t.ID, fmt.Sprintf(format, args...))
}

// Record adds a command a reader can run that the trial did not run itself as a subprocess (the
// lesson's own clients, a manual equivalent).
func (t *Trial) Record(cmd string) { t.commands = append(t.commands, cmd) }

// Echobench runs bin/echobench with args, keeps its JSON as <ID>-<name>.json and returns the
// report. A run that failed but wrote a report returns both; the error then carries the tail of
// echobench's stderr.
func (t *Trial) Echobench(name string, args ...string) (*report.Report, error) {
	file := filepath.Join(t.Dir, fmt.Sprintf("%02d-%s.json", t.ID, name))
	t.Record(shellLine(append([]string{filepath.Join(t.Bin, "echobench")}, args...)))
	t.Logf("echobench %s", strings.Join(args, " "))
	_, stderr, runErr := t.exec(filepath.Join(t.Bin, "echobench"), append(append([]string(nil), args...), "-o", file)...)
	b, err := os.ReadFile(file)
	if err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("echobench %s: %w: %s", name, runErr, tail(stderr))
		}
		return nil, fmt.Errorf("echobench %s wrote no report: %w", name, err)
	}
	t.raw = append(t.raw, file)
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("echobench %s: reading %s: %w", name, file, err)
	}
	if runErr != nil {
		return &r, fmt.Errorf("echobench %s: %w: %s", name, runErr, tail(stderr))
	}
	return &r, nil
}

// Command runs a binary of the lab and records it; its stdout and stderr come back whatever its
// exit, so that a refusal can be read.
func (t *Trial) Command(binary string, args ...string) (stdout, stderr string, err error) {
	path := filepath.Join(t.Bin, binary)
	t.Record(shellLine(append([]string{path}, args...)))
	return t.exec(path, args...)
}

func (t *Trial) exec(path string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(t.ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	// echobench stops its own server child on SIGTERM; a SIGKILL at the budget would leave it.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// StartServer starts bin/echoserver -model model with cfg's flags, pinned to ServerCPU, and
// records the command. The caller stops it (Stop).
func (t *Trial) StartServer(model string, cfg server.Config) (*child.Server, error) {
	bin := filepath.Join(t.Bin, "echoserver")
	args := append([]string{"taskset", "-c", fmt.Sprint(ServerCPU), bin, "-model", model}, cfg.Args()...)
	t.Record(shellLine(args) + "   # prints its address first")
	srv, err := child.Start(child.Options{Binary: bin, Model: model, Config: cfg, CPUs: []int{ServerCPU}})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", model, err)
	}
	return srv, nil
}

// Stop stops a server StartServer started and returns its last stats.
func Stop(srv *child.Server) *server.Stats {
	return srv.Stop(stopGrace).Stats
}

// GoTest runs `go test -count=1 -run run pkgs...` in the repository and says whether it passed.
func (t *Trial) GoTest(run string, pkgs ...string) TestRun {
	args := append([]string{"test", "-count=1", "-run", run}, pkgs...)
	line := shellLine(append([]string{"go"}, args...))
	t.Record(line)
	t.Logf("%s", line)
	cmd := exec.CommandContext(t.ctx, t.Go, args...)
	cmd.Dir = t.Root
	out, err := cmd.CombinedOutput()
	return TestRun{Command: line, Passed: err == nil, Output: tail(string(out))}
}

// tail keeps the end of a command's output.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > tailBytes {
		s = "…" + s[len(s)-tailBytes:]
	}
	return s
}

// shellLine joins argv as a shell would need it typed.
func shellLine(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " '\"$|&;()<>*?[]\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Run runs the experiments one after another, each within its budget, and returns their
// findings in order. An experiment that fails or runs out of time is a finding too: not
// measurable, with the reason.
func (l Lab) Run(ctx context.Context, es []*Experiment) []Finding {
	out := make([]Finding, 0, len(es))
	for _, e := range es {
		ectx, cancel := context.WithTimeout(ctx, e.Budget)
		t := &Trial{Lab: l, ID: e.ID, ctx: ectx}
		start := time.Now()
		t.Logf("%s (budget %v)", e.Title, e.Budget)
		f, err := e.Run(t)
		if err != nil {
			why := err.Error()
			if errors.Is(ectx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("ran out of its %v budget: %v", e.Budget, err)
			}
			f.Verdict = Verdict{Outcome: NotMeasurable, Why: why}
		}
		cancel()
		f.Commands = append(t.commands, f.Commands...)
		f.Raw = append(f.Raw, t.raw...)
		f.Elapsed = time.Since(start)
		t.Logf("%s (%.1fs)", f.Verdict.Text(), f.Elapsed.Seconds())
		out = append(out, f)
	}
	return out
}
