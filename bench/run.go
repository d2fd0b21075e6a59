package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"echobench/report"
	"echobench/server"
)

// Defaults of a Config's zero fields.
const (
	DefaultTolerance = 0.05 // ±5 % on every ratio to the baseline, the target
	defaultTimeout   = 60 * time.Second
	defaultStopGrace = 2 * time.Second
)

// Run measures every row under every cell and returns the results in row order, cells within.
//
// It runs in two passes. The first runs every cell in order, each for Config.Repeat rounds (an
// adaptive cell for at least two, the fewest an interval needs), the rows' order reversed every
// other round. The second adds rounds to the adaptive cells that have not converged, one round
// per cell at a time so that the extra rounds of one cell are spread over the run, until every
// adaptive cell has converged, reached MaxRepeat, or would end past the Budget.
func Run(ctx context.Context, cfg Config) ([]*Result, error) {
	if cfg.Repeat < 1 {
		cfg.Repeat = 1
	}
	cfg.MaxRepeat = max(cfg.MaxRepeat, cfg.Repeat)
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Converged == nil {
		cfg.Converged = Converged
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = defaultStopGrace
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	if err := WriteEnv(filepath.Join(cfg.OutDir, "env.json"), cfg); err != nil {
		return nil, err
	}
	r := newRunner(cfg)
	defer r.fillAliases()
	r.logNotes()

	for _, cell := range cfg.Cells {
		if cell.Same != "" {
			continue
		}
		for round := range r.minRounds(cell) {
			if err := r.round(ctx, cell, round); err != nil {
				return r.ordered, err
			}
		}
	}
	r.adaptive = true
	for round := 2; round < cfg.MaxRepeat; round++ {
		ran := false
		for _, cell := range cfg.Cells {
			if !r.wantsRound(cell, round) {
				continue
			}
			if cfg.Budget > 0 && time.Since(r.start)+r.roundCost(cell) > cfg.Budget {
				r.log("%s: not repeated past %d rounds: another would end past the %v budget", cell.Name, round, cfg.Budget)
				continue
			}
			if err := r.round(ctx, cell, round); err != nil {
				return r.ordered, err
			}
			ran = true
		}
		if !ran {
			break
		}
	}
	for _, cell := range cfg.Cells {
		if cell.Adaptive && cell.Same == "" && !cfg.Converged(r.ordered, cell, Baseline, cfg.Tolerance) {
			r.log("%s: ratios to %s not all within ±%.0f%% after %d rounds", cell.Name, Baseline, cfg.Tolerance*100, r.roundsRun[cell.Name])
		}
	}
	return r.ordered, nil
}

// runner is one Run's state.
type runner struct {
	cfg       Config
	start     time.Time
	results   map[[2]string]*Result
	ordered   []*Result
	cellIndex map[string]int
	spent     map[string]time.Duration // wall time of the cell's runs so far
	runs      map[string]int           // runs of the cell so far
	roundsRun map[string]int
	adaptive  bool // in the second pass
	// partial is, per row, the first cell where it served only part of its connections.
	partial map[string]partialAt
	planned int // runs of the first pass (rows found n/a on the way skip theirs; adaptive rounds add more)
	done    int // runs so far
}

func newRunner(cfg Config) *runner {
	r := &runner{cfg: cfg, start: time.Now(), results: map[[2]string]*Result{}, cellIndex: map[string]int{},
		spent: map[string]time.Duration{}, runs: map[string]int{}, roundsRun: map[string]int{},
		partial: map[string]partialAt{}}
	for i, cell := range cfg.Cells {
		r.cellIndex[cell.Name] = i
	}
	for _, row := range cfg.Rows {
		for _, cell := range cfg.Cells {
			res := &Result{Row: row, Cell: cell.Name}
			if cell.Same == "" {
				res.NA = Unsupported(row, cell, cfg)
				if res.NA == "" {
					r.planned += r.minRounds(cell)
				}
			}
			r.results[[2]string{row.Name, cell.Name}] = res
			r.ordered = append(r.ordered, res)
		}
	}
	return r
}

// minRounds is a cell's rounds in the first pass.
func (r *runner) minRounds(cell Cell) int {
	if cell.Adaptive && r.cfg.MaxRepeat >= 2 {
		return max(r.cfg.Repeat, 2)
	}
	return r.cfg.Repeat
}

// wantsRound reports whether an adaptive cell should get round (counted from 0).
func (r *runner) wantsRound(cell Cell, round int) bool {
	return cell.Adaptive && cell.Same == "" && r.roundsRun[cell.Name] == round &&
		!r.cfg.Converged(r.ordered, cell, Baseline, r.cfg.Tolerance)
}

// logNotes prints each distinct cell note once, so the output says how the figures were taken.
func (r *runner) logNotes() {
	seen := map[string]bool{}
	for _, cell := range r.cfg.Cells {
		if cell.Note != "" && !seen[cell.Note] {
			seen[cell.Note] = true
			r.log("note: %s", cell.Note)
		}
	}
}

// round runs one round of cell over every row that can run it, the rows' order reversed on odd
// rounds so that drift does not always favour the same row.
func (r *runner) round(ctx context.Context, cell Cell, round int) error {
	rows := append([]Row(nil), r.cfg.Rows...)
	if round%2 == 1 {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
	}
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		res := r.results[[2]string{row.Name, cell.Name}]
		if res.NA == "" && len(res.Runs) == 0 {
			res.NA = r.carried(row, cell)
		}
		if res.NA != "" && len(res.Runs) == 0 {
			continue // n/a before running, or its first run failed: it will not run now
		}
		r.log("cell %d/%d %s, round %d: %s (%d/%d, run %d of %d planned): %s · %s left",
			r.cellIndex[cell.Name]+1, len(r.cfg.Cells), cell.Name, round+1, row.Name, i+1, len(rows),
			r.done+1, r.planned, strings.Join(cell.Args, " "), r.left())
		began := time.Now()
		r.runOne(ctx, row, cell, round, res)
		r.spent[cell.Name] += time.Since(began)
		r.runs[cell.Name]++
		r.done++
		if res.NA != "" {
			r.log("  %s %s: n/a after %.1f s: %s", row.Name, cell.Name, time.Since(began).Seconds(), res.NA)
		} else if len(res.Rounds) > 0 && res.Rounds[len(res.Rounds)-1] == round {
			r.log("  %s %s: %s in %.1f s", row.Name, cell.Name, figure(cell, res), time.Since(began).Seconds())
		}
	}
	r.roundsRun[cell.Name] = round + 1
	return nil
}

// partialAt is where a row first served only part of a cell's connections.
type partialAt struct {
	conns        int
	cell, reason string
}

// carried is the n/a reason a row gets, before running, for a cell of at least as many
// long-lived connections as one where it served no more than half of them: a model that could
// not start a process for each of 1,000 clients within one cell's window will not in the next
// one's either, and its runs would cost the budget several seconds each to show it (the
// process model took 2 to 15 s per 1,000-connection cell, serving 48 to 627 of them).
func (r *runner) carried(row Row, cell Cell) string {
	p, ok := r.partial[row.Name]
	if !ok || cell.Reconnect || cell.Conns < p.conns || cell.Name == p.cell {
		return ""
	}
	return fmt.Sprintf("not run: at %s, %s", p.cell, p.reason)
}

// figure is the one number a progress line shows for a finished run.
func figure(cell Cell, res *Result) string {
	s := res.Runs[len(res.Runs)-1]
	switch {
	case cell.Sweep == SweepKnee && len(res.Knees) > 0:
		return fmt.Sprintf("knee %.0f msgs/s", res.Knees[len(res.Knees)-1].RateMsgsPerS)
	case cell.Reconnect:
		return fmt.Sprintf("%.0f new conns/s", s.NewConnsPerSec)
	case cell.Sweep == SweepIdle:
		return fmt.Sprintf("RSS %.1f MiB", float64(s.ServerPeakRSSBytes)/(1<<20))
	}
	return fmt.Sprintf("%.0f msgs/s, p99 %.0f µs", s.MsgsPerSec, s.LatencyP99us)
}

// runOne is one echobench run of row under cell, recorded in res.
func (r *runner) runOne(ctx context.Context, row Row, cell Cell, round int, res *Result) {
	base := filepath.Join(r.cfg.OutDir, fmt.Sprintf("%s_%s_%d", fileName(row.Name), fileName(cell.Name), round))
	out, hlog := base+".json", base+".hlog"
	fail := func(reason string) {
		if len(res.Runs) == 0 {
			res.NA = reason
			return
		}
		// Earlier rounds stand; the table's notes say this one failed.
		res.Warning = joinNote(res.Warning, fmt.Sprintf("round %d: %s", round+1, reason))
	}
	// A report left by an earlier run into the same directory must not pass for this one.
	for _, f := range []string{out, hlog} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			fail(fmt.Sprintf("cannot remove stale %s: %v", f, err))
			return
		}
	}
	var args []string
	var ext *external
	if row.External() {
		var err error
		if ext, err = startExternal(row, r.cfg.ServerCPUs); err != nil {
			fail(err.Error())
			return
		}
		defer ext.Stop(r.cfg.StopGrace)
		args = append(externalArgs(ext), cell.Args...)
	} else {
		args = cellArgs(r.cfg.Server, row, cell)
	}
	args = append(args, r.bracketArgs(row, cell)...)
	args = append(args, "-o", out)
	if r.cfg.Features.HLog {
		args = append(args, "-hlog", hlog)
	}
	timeout := orDefault(cell.Timeout, r.cfg.Timeout)
	stderr, timedOut, err := r.exec(ctx, args, timeout)
	crashed := ""
	if ext != nil {
		crashed = ext.Exited()
	}
	rep, rerr := readReport(out)
	switch {
	case rerr == nil && len(rep.Runs) > 0:
		if len(rep.Warnings) > 0 {
			res.Warning = joinNote(res.Warning, strings.Join(rep.Warnings, "; "))
		}
		if crashed != "" {
			fail(crashed)
			return
		}
		why, short, partial := judge(cell, rep.Summary, rep.Knee)
		if short != "" {
			res.Warning = joinNote(res.Warning, fmt.Sprintf("round %d: %s", round+1, short))
		}
		if why != "" {
			fail(fmt.Sprintf("%s (see %s)", why, filepath.Base(out)))
			if partial && len(res.Runs) == 0 {
				if _, seen := r.partial[row.Name]; !seen {
					r.partial[row.Name] = partialAt{conns: cell.Conns, cell: cell.Name, reason: why}
				}
			}
			return
		}
		res.Runs = append(res.Runs, rep.Summary)
		res.Rounds = append(res.Rounds, round)
		res.Files = append(res.Files, out)
		if rep.Knee != nil {
			res.Knees = append(res.Knees, *rep.Knee)
		}
		if _, err := os.Stat(hlog); err == nil {
			res.HLogs = append(res.HLogs, hlog)
		}
	case timedOut:
		fail(fmt.Sprintf("timed out after %s", timeout))
	case crashed != "":
		fail(crashed)
	default:
		reason := lastLine(stderr)
		if reason == "" && rerr != nil {
			reason = rerr.Error()
		}
		if reason == "" && err != nil {
			reason = err.Error()
		}
		fail(reason)
	}
}

// exec runs echobench with args under timeout and returns its stderr, whether the timeout
// killed it, and its error.
func (r *runner) exec(ctx context.Context, args []string, timeout time.Duration) (string, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stderr strings.Builder
	run := r.cfg.Exec
	if run == nil {
		run = execEchobench
	}
	err := run(cctx, r.cfg.Echobench, args, &stderr)
	return stderr.String(), cctx.Err() != nil && ctx.Err() == nil, err
}

// execEchobench runs the real echobench. Killing it by its pid is enough: it starts a model's
// server with Pdeathsig, so the server dies with it; an external server is the harness's own.
func execEchobench(ctx context.Context, path string, args []string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = stderr
	return cmd.Run()
}

// bracketArgs bound a knee search by the row's own closed-loop throughput S at the same
// connections, measured earlier in this run. Open loop can go past ping-pong's S, because a
// server that wakes to many ready connections at once batches them (epoll's held its bound at
// 1.2 S in a quick run), so the top is 2 S; the first lower end is S/4, which echobench lowers
// further if even that fails the bound. Without that cell's runs echobench finds the top
// itself, with a closed-loop probe.
func (r *runner) bracketArgs(row Row, cell Cell) []string {
	if cell.Bracket == "" {
		return nil
	}
	src := r.results[[2]string{row.Name, cell.Bracket}]
	if src == nil || len(src.Runs) == 0 {
		return nil
	}
	s := src.Mean(func(s report.Summary) float64 { return s.MsgsPerSec })
	if s <= 0 {
		return nil
	}
	return []string{"-knee-min", strconv.Itoa(max(int(s/4), 1)), "-knee-max", strconv.Itoa(int(s * 2))}
}

// fillAliases gives every cell that stands for an earlier one (Cell.Same) that cell's results.
func (r *runner) fillAliases() {
	for _, cell := range r.cfg.Cells {
		if cell.Same == "" {
			continue
		}
		for _, row := range r.cfg.Rows {
			src := r.results[[2]string{row.Name, cell.Same}]
			dst := r.results[[2]string{row.Name, cell.Name}]
			if src == nil || dst == nil {
				continue
			}
			*dst = Result{Row: src.Row, Cell: cell.Name, NA: src.NA, Warning: src.Warning,
				Runs: append([]report.Summary(nil), src.Runs...), Rounds: append([]int(nil), src.Rounds...),
				Knees: append([]report.Knee(nil), src.Knees...), Files: append([]string(nil), src.Files...),
				HLogs: append([]string(nil), src.HLogs...)}
		}
	}
}

// perRun estimates one run of cell: the mean of its runs so far, or before the first one its
// warmup and window plus start-up and teardown, which grow with the connections.
func (r *runner) perRun(cell Cell) time.Duration {
	if n := r.runs[cell.Name]; n > 0 {
		return r.spent[cell.Name] / time.Duration(n)
	}
	overhead := 300*time.Millisecond + time.Duration(cell.Conns)*300*time.Microsecond
	if cell.Sweep == SweepKnee {
		const probes = 8 // a bracketed search's usual count
		return probes * (cell.Warmup + cell.Duration + overhead)
	}
	return cell.Warmup + cell.Duration + overhead
}

// roundCost estimates one round of cell over the rows that run it.
func (r *runner) roundCost(cell Cell) time.Duration {
	n := 0
	for _, row := range r.cfg.Rows {
		if res := r.results[[2]string{row.Name, cell.Name}]; res.NA == "" || len(res.Runs) > 0 {
			n++
		}
	}
	return time.Duration(n) * r.perRun(cell)
}

// left estimates the time still to run: the first pass's remaining runs, or in the second pass
// the adaptive rounds still possible, capped by what is left of the budget.
func (r *runner) left() string {
	var d time.Duration
	for _, cell := range r.cfg.Cells {
		if cell.Same != "" {
			continue
		}
		rounds := r.minRounds(cell)
		if r.adaptive && cell.Adaptive {
			rounds = r.cfg.MaxRepeat
		}
		if more := rounds - r.roundsRun[cell.Name]; more > 0 {
			d += time.Duration(more) * r.roundCost(cell)
		}
	}
	if r.cfg.Budget > 0 && r.adaptive {
		d = min(d, max(r.cfg.Budget-time.Since(r.start), 0))
	}
	return fmt.Sprintf("%s elapsed, ~%s", round(time.Since(r.start)), round(d))
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }

func (r *runner) log(format string, args ...any) {
	if r.cfg.Log != nil {
		r.cfg.Log(format, args...)
	}
}

// cellArgs are the echobench flags for one model row under one cell. The shared server flags
// come before the row's, because of two values for one flag the later wins.
func cellArgs(shared server.Config, row Row, cell Cell) []string {
	return append(append(shared.Args(), row.Args()...), cell.Args...)
}

// fileName makes a row or cell name safe in a file name: prefork/128 → prefork-128.
func fileName(s string) string {
	return strings.NewReplacer("/", "-", " ", "_").Replace(s)
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// joinNote adds note b to a, once: every round of a cell tends to repeat the same warning.
func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "" || strings.Contains(a, b):
		return a
	}
	return a + "; " + b
}

func readReport(path string) (*report.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Runs) == 0 && r.Error != "" {
		return nil, errors.New(r.Error)
	}
	return &r, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
