// Package bench is the comparison harness behind `make bench`: it runs cmd/echobench against
// every row (each model as its own echoserver process, the C reference and any bring-your-own
// server as an external process) under every cell of a matrix, and ranks them.
//
// Every run is a separate echobench process with a fresh server, so one row's crash, leak or
// lingering connections cannot touch the next row's figures. Server and load generator are
// pinned to different CPUs (echobench pins a model's child; the harness pins an external server
// itself). Repeats alternate the order of the rows, so a slow drift of the machine (thermal,
// another tenant) does not always land on the same row; adaptive cells repeat until every ratio
// to the baseline is known to within a tolerance (Config.Converged) or a cap is reached.
//
// The files: bench.go the types, matrix.go the cells of each BENCH level, rows.go the rows and
// the n/a decisions, run.go the loop, external_linux.go starting and stopping external servers,
// env.go the run's env.json.
package bench

import (
	"context"
	"io"
	"time"

	"echobench/report"
	"echobench/server"
)

// Row is one server configuration in the table: a model and its configuration, such as the pool
// size for pooled models, or an external server started from a command.
type Row struct {
	Name   string        // what the table shows: "blocking", "prefork/128", "C-ref", ...
	Model  string        // -model; empty for an external row
	Server server.Config // the server's flags (Config.Args), which echobench passes to its child
	// Command starts an external row's server (the C reference, a -server row): a shell command
	// with {port} where the harness puts the loopback port it chose, run as sh -c 'exec
	// COMMAND' so that the process accounted is the server itself (environment settings go in
	// front with env(1): 'env GOMAXPROCS=1 ./srv -p {port}'). Empty for a model row.
	Command string
	// Missing, if set, is why the row cannot run at all (its binary is not built, say): every
	// cell of it is n/a with this reason.
	Missing string
}

// External reports whether the row is a server the harness starts itself from Command.
func (r Row) External() bool { return r.Command != "" }

// Args are the echobench flags that select a model row's server. An external row's are known
// only once its server runs (externalArgs).
func (r Row) Args() []string {
	if r.External() {
		return nil
	}
	return append([]string{"-model", r.Model}, r.Server.Args()...)
}

// Cell is one load shape every row is measured under. Cells of one sweep differ in one
// parameter, X on that sweep's axis; tables and plots group them by Sweep.
type Cell struct {
	Name  string   // "conns=1000", "size=16KiB", "rate=30000", "reconnect"
	Sweep string   // one of the Sweep constants
	X     float64  // the swept value: connections, bytes, pipeline depth, offered msgs/s
	Args  []string // echobench flags for the load

	// Conns is how many connections the load opens, for the n/a decisions made before a run
	// (select's fd ceiling, a pool's size); Reconnect says they are short, so a pool serves
	// them all in turn.
	Conns     int
	Reconnect bool
	// Warmup and Duration are the load's (also in Args), for the time estimates.
	Warmup, Duration time.Duration
	// Timeout bounds one run of the cell; 0 means Config.Timeout.
	Timeout time.Duration
	// Adaptive cells are repeated until Config.Converged says every row's ratio to the
	// baseline is known to within Config.Tolerance, or Config.MaxRepeat rounds have run.
	Adaptive bool
	// Same names an earlier cell that is the same load: its runs stand for this one's too
	// (size=64B at 100 connections is conns=100), so the load is not run twice.
	Same string
	// Bracket names, for knee cells, the closed-loop cell of the same connections whose
	// throughput bounds the search (-knee-min, -knee-max), which saves its own closed probe.
	Bracket string
	// Note says how the cell is measured or read, where that is not obvious from its load; the
	// run prints each note once and keeps them in env.json.
	Note string
}

// The sweeps of the matrix: the axis a cell's X is on.
const (
	SweepConns     = "conns"     // closed loop, 64 B, pipeline 1; X = connections
	SweepSize      = "size"      // closed loop, 100 connections; X = message bytes
	SweepPipeline  = "pipeline"  // closed loop, 1,000 × 64 B; X = messages in flight per connection
	SweepReconnect = "reconnect" // one echo per connection; X = connections
	SweepIdle      = "idle"      // mostly idle connections, for RSS per connection; X = connections
	SweepRate      = "rate"      // open loop, 1,000 × 64 B; X = offered msgs/s
	SweepKnee      = "knee"      // -knee search; X = the p99 bound in µs
	SweepUDP       = "udp"       // UDP datagrams, closed loop, 64 B, every row with a UDP variant; X = flows
)

// Baseline is the row every ratio is taken against: what a Go user writes without thinking about
// IO models.
const Baseline = "stdnet"

// Config is one comparison run.
type Config struct {
	Echobench string // path of the echobench binary
	OutDir    string // where each run's JSON, .hlog and env.json go
	Level     string // the BENCH level the cells came from, for env.json
	Rows      []Row  // servers to compare
	Cells     []Cell // load shapes, in the order they run
	// Repeat is the rounds every cell gets; adaptive cells get more, up to MaxRepeat, while
	// Converged(results, cell, Baseline, Tolerance) is false and the Budget allows.
	Repeat    int
	MaxRepeat int
	Tolerance float64
	Converged func(results []*Result, cell Cell, baseline string, tol float64) bool
	// Budget is the wall time the whole run aims at: an adaptive round starts only if its
	// estimated end is within it. The planned rounds run regardless. 0 means no limit.
	Budget  time.Duration
	Timeout time.Duration // a run that takes longer is killed and shown as n/a
	// Server is configuration every model row's server gets (echocompare's server.Config
	// flags); a field a row sets itself, such as prefork/128's pool, wins.
	Server server.Config
	// ServerCPUs are where external servers are pinned (echobench pins model children to its
	// own -server-cpus default, the same CPU 0); nil leaves them unpinned.
	ServerCPUs []int
	// StopGrace is how long an external server has after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// Limits are the machine's, for the n/a decisions made before a run.
	Limits Limits
	// Features are what this echobench binary can do (ProbeEchobench): without -knee the knee
	// cells are n/a, without -hlog no interval logs are asked for.
	Features Features
	Log      func(format string, args ...any)
	// Exec runs echobench (path, args) and returns its error; nil runs the real one. Tests
	// substitute a fake that writes a report to the -o path.
	Exec func(ctx context.Context, path string, args []string, stderr io.Writer) error
}

// Result is one (row, cell) measurement, or the reason there is none.
type Result struct {
	Row     Row
	Cell    string
	Runs    []report.Summary // one per repeat that produced a report
	Rounds  []int            // the repeat round of each of Runs, to pair it with other rows' runs of that round
	Knees   []report.Knee    // SweepKnee cells: each run's -knee search (its JSON "knee")
	NA      string           // why the row could not run the cell; empty if it did
	Files   []string         // the JSON files behind it
	HLogs   []string         // each run's latency interval log (-hlog), where echobench wrote one
	Warning string           // echobench's warnings and failed later rounds, for the notes under the table
}

// Mean returns the mean of f over the runs.
func (r *Result) Mean(f func(report.Summary) float64) float64 {
	if len(r.Runs) == 0 {
		return 0
	}
	sum := 0.0
	for _, s := range r.Runs {
		sum += f(s)
	}
	return sum / float64(len(r.Runs))
}
