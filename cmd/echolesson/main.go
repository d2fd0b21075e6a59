// Command echolesson is `make lesson`: it runs each claim of the teaching notes as an experiment
// against the models (package lesson), writes docs/lesson.md and prints it, and keeps the raw data
// in results/lesson-<UTC>/.
//
//	echolesson -bin bin                # every claim; about six minutes on two cores
//	echolesson -bin bin -only 3,12     # some of them
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"echobench/internal/affinity"
	"echobench/internal/cmdline"
	"echobench/lesson"
)

func main() { os.Exit(run()) }

func run() int {
	bin := flag.String("bin", "bin", "directory holding echobench and echoserver (make build)")
	doc := flag.String("doc", "docs/lesson.md", "the page to write")
	tour := flag.String("tour", "docs/models.md", "the page whose verdict table a full run (no -only) rewrites, between its markers (\"\" = none)")
	out := flag.String("o", "", "directory for the raw data (default results/lesson-<UTC time>)")
	only := flag.String("only", "", "run only these claims, e.g. 3,12")
	goCmd := flag.String("go", "go", "the go command, for the claims that run go tests")
	cmdline.ParseCommandLine()

	es, err := pick(lesson.Experiments(), *only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echolesson:", err)
		return 2
	}
	start := time.Now()
	dir := *out
	if dir == "" {
		dir = filepath.Join("results", "lesson-"+start.UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "echolesson:", err)
		return 1
	}
	pinned := pinLoad()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "echolesson: %d claims, budget %v, raw data in %s\n", len(es), lesson.TotalBudget(es), dir)
	lab := lesson.Lab{Bin: *bin, Root: ".", Dir: dir, Go: *goCmd, Log: os.Stderr}
	findings := lab.Run(ctx, es)

	cmdline := "make lesson"
	if *only != "" {
		cmdline = "bin/echolesson -only " + *only
	}
	var page bytes.Buffer
	header := lesson.Header{Start: start, Elapsed: time.Since(start), Command: cmdline, Dir: dir, Env: env(pinned)}
	lesson.Render(&page, header, es, findings)
	if *tour != "" && *only == "" {
		if err := updateTour(*tour, header, es, findings); err != nil {
			fmt.Fprintln(os.Stderr, "echolesson:", err)
			return 1
		}
	}
	if err := os.MkdirAll(filepath.Dir(*doc), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "echolesson:", err)
		return 1
	}
	for _, path := range []string{*doc, filepath.Join(dir, "lesson.md")} {
		if err := os.WriteFile(path, page.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "echolesson:", err)
			return 1
		}
	}
	os.Stdout.Write(page.Bytes())
	fmt.Fprintf(os.Stderr, "echolesson: wrote %s in %v\n", *doc, time.Since(start).Round(time.Second))
	return 0
}

// updateTour rewrites the verdict table of the tour page (docs/models.md) from this run.
func updateTour(path string, h lesson.Header, es []*lesson.Experiment, fs []lesson.Finding) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("the tour's verdicts: %w", err)
	}
	var table bytes.Buffer
	lesson.RenderVerdicts(&table, h, es, fs)
	page, err := lesson.SpliceVerdicts(string(old), table.String())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(page), 0o644)
}

// pick keeps the experiments whose IDs are listed; all of them for an empty list.
func pick(es []*lesson.Experiment, list string) ([]*lesson.Experiment, error) {
	if list == "" {
		return es, nil
	}
	want := map[int]bool{}
	for _, f := range strings.Split(list, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-only %q: want claim numbers such as 3,12", list)
		}
		want[id] = true
	}
	var out []*lesson.Experiment
	for _, e := range es {
		if want[e.ID] {
			out = append(out, e)
			delete(want, e.ID)
		}
	}
	if len(want) > 0 {
		return nil, fmt.Errorf("-only %q: no such claim; there are %d", list, len(es))
	}
	return out, nil
}

// pinLoad keeps echolesson, its own clients and the echobench runs it starts off the server's
// CPU, as echobench keeps itself off its child's; it says where they run.
func pinLoad() string {
	online, err := affinity.Online()
	if err != nil {
		return "load unpinned: " + err.Error()
	}
	var others []int
	for _, c := range online {
		if c != lesson.ServerCPU {
			others = append(others, c)
		}
	}
	if len(others) == 0 {
		return "load unpinned: only one CPU"
	}
	if _, err := affinity.PinProcess(os.Getpid(), others); err != nil {
		return "load unpinned: " + err.Error()
	}
	return "load (echobench, the lesson's own clients) on CPU " + affinity.Format(others)
}

// env is the run's conditions in one line.
func env(pinned string) string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	return fmt.Sprintf("kernel %s, %s, %d CPUs, commit %s; servers pinned to CPU %d, %s",
		strings.TrimSpace(string(kernel)), runtime.Version(), runtime.NumCPU(), strings.TrimSpace(string(commit)), lesson.ServerCPU, pinned)
}
