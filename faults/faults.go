package faults

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// Verdict is what a cell's rule found.
type Verdict string

const (
	Holds         Verdict = "holds"
	Breaks        Verdict = "breaks"
	Limitation    Verdict = "expected limitation"
	NotApplicable Verdict = "n/a"
)

// Cell is one model under one scenario.
type Cell struct {
	Row      string  `json:"row"` // the model, or model/variant ("process/prefork")
	Scenario string  `json:"scenario"`
	Verdict  Verdict `json:"verdict"`
	// Figure is the measurement behind the verdict, short enough for a table cell.
	Figure string `json:"figure"`
	// Detail says what was measured against which rule, and for a limitation why it is one.
	Detail string        `json:"detail,omitempty"`
	Took   time.Duration `json:"took_ns"`
}

// Scenario is one fault, run against one row at a time.
type Scenario struct {
	Name string
	// Rule is what must hold, in a sentence: the table's legend.
	Rule string
	// Fast scenarios also run inside `make test`, at the Quick scale.
	Fast bool
	// Once scenarios concern the binaries, not a model: they run once, in a row of their own.
	Once bool
	// Run measures and judges one row. It returns a cell without Row and Scenario, which Run
	// fills in.
	Run func(ctx context.Context, e *Env) Cell
}

// Scale is how big the loads are.
type Scale struct {
	Name         string
	SlowReaders  int           // clients that never read, in many-slow-readers
	Normal       int           // clients echoing beside a fault, whose latency is compared
	Window       time.Duration // how long a latency or CPU sample lasts
	ResetConns   int           // connections per reset storm
	ResetRounds  int           // storms
	BurstConns   int           // simultaneous connects in connect-burst
	IdleConns    int           // idle connections whose cost is measured
	Churn        time.Duration // how long a client opens and closes as fast as it can
	CeilingExtra int           // connections past a model's thread or process ceiling
}

// Full is `make faults`; Quick is the same scenarios small enough for `make test`.
var (
	Full = Scale{Name: "full", SlowReaders: 1000, Normal: 100, Window: 2 * time.Second, ResetConns: 1000,
		ResetRounds: 3, BurstConns: 10000, IdleConns: 1000, Churn: 2 * time.Second, CeilingExtra: 200}
	Quick = Scale{Name: "quick", SlowReaders: 50, Normal: 10, Window: 500 * time.Millisecond, ResetConns: 200,
		ResetRounds: 3, BurstConns: 500, IdleConns: 100, Churn: 300 * time.Millisecond, CeilingExtra: 20}
)

// Row is one server configuration the table has a row for.
type Row struct {
	Name  string // as the table shows it
	Model string // -model
	Args  []string
}

// Options say what Run runs.
type Options struct {
	Rows      []Row
	Scenarios []Scenario
	Scale     Scale
	Env       EnvOptions
	// Progress, if set, gets one line per cell as it finishes.
	Progress io.Writer
}

// Run runs every scenario against every row, one cell at a time (never two loads at once), and
// returns the cells in row, then scenario order.
func Run(ctx context.Context, o Options) []Cell {
	var cells []Cell
	run := func(r Row, s Scenario) {
		start := time.Now()
		e := newEnv(r, o.Scale, o.Env)
		c := s.Run(ctx, e)
		e.cleanup()
		c.Row, c.Scenario, c.Took = r.Name, s.Name, time.Since(start)
		cells = append(cells, c)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "faults: %-16s %-22s %-20s %s (%.1fs)\n", r.Name, s.Name, c.Verdict, c.Figure, c.Took.Seconds())
		}
	}
	for _, r := range o.Rows {
		for _, s := range o.Scenarios {
			if ctx.Err() != nil {
				return cells
			}
			if !s.Once {
				run(r, s)
			}
		}
	}
	for _, s := range o.Scenarios {
		if s.Once && ctx.Err() == nil {
			run(Row{Name: BinariesRow}, s)
		}
	}
	return cells
}

// BinariesRow is the row of the scenarios that concern the binaries rather than a model.
const BinariesRow = "(binaries)"

// Select returns the scenarios whose names are in names (all of them for an empty list), or an
// error naming the unknown ones.
func Select(all []Scenario, names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []Scenario
	var unknown []string
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == n })
		if i < 0 {
			unknown = append(unknown, n)
			continue
		}
		out = append(out, all[i])
	}
	if len(unknown) > 0 {
		var known []string
		for _, s := range all {
			known = append(known, s.Name)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown scenario %q; known: %v", unknown, known)
	}
	return out, nil
}

// judge is the verdict of a rule that held or not, for a row that may have a documented
// limitation in this scenario: a failed rule is a limitation only where the row's model says
// so (limitations), a bug everywhere else.
func judge(e *Env, scenario string, held bool) (Verdict, string) {
	if held {
		return Holds, ""
	}
	if why, ok := limitations[limitKey{e.Row.Name, scenario}]; ok {
		return Limitation, why
	}
	return Breaks, ""
}

type limitKey struct{ row, scenario string }

// poolLimit is the prefork pool's limitation wherever a scenario needs more connections served at
// once than the pool has workers.
const poolLimit = "a prefork pool of N serves N connections at a time and the rest wait in the listen backlog until a worker is free (models/process/doc.go)"

// limitations are the failures a row's design predicts, each with the doc.go that says so.
// A cell is judged against them only after its rule failed: a model that does better than its
// limitation holds.
var limitations = map[limitKey]string{
	{"select", "select-1024"}:                "select(2) cannot watch fd 1024 or above (FD_SETSIZE): connections past it are refused and counted (models/selectmodel/doc.go)",
	{"select", "connect-burst"}:              "select(2) serves only fds below 1024 (models/selectmodel/doc.go)",
	{"select", "many-slow-readers"}:          "select(2) serves only fds below 1024 (models/selectmodel/doc.go)",
	{"select", "idle-cost"}:                  "select(2) serves only fds below 1024 (models/selectmodel/doc.go)",
	{"nonblocking", "slow-reader"}:           "one busy-polling thread serves every connection in turn, so any stall is everyone's latency (models/nonblocking/doc.go)",
	{"select", "slow-reader"}:                "select rebuilds and scans its fd sets each pass, so latency grows with what it watches (models/selectmodel/doc.go)",
	{"nonblocking", "fd-exhaustion"}:         "a busy-polling loop spins by design, with or without free fds (models/nonblocking/doc.go)",
	{"nonblocking", "idle-cost"}:             "a busy-polling loop spins by design, with or without work (models/nonblocking/doc.go)",
	{"process", "many-slow-readers"}:         "a process per connection costs a Go runtime per connection, whose threads and pages grow once it blocks in a send, beyond the bytes it holds (models/process/doc.go); what it holds stays within the bound",
	{"process", "reset-storm"}:               "every connection costs a fork and exec of a Go process, so a storm of connections queues work the server finishes only after it (models/process/doc.go)",
	{"process", "churn"}:                     "every connection costs a fork and exec of a Go process, so a client that opens and closes as fast as it can queues work the server finishes only after it stops (models/process/doc.go)",
	{"async", "soak"}:                        "gnet's per-loop listeners take one connection per loop wake, so under load a backlog of thousands drains slowly and the server's fds (and RSS) are still climbing while the first connections echo (models/async/doc.go)",
	{"process", "soak"}:                      "every connection is a Go process whose runtime grows its heap and threads at its own pace, so the tree's RSS and threads keep moving by a few per cent while each child settles (models/process/doc.go)",
	{"process/prefork", "slow-reader"}:       poolLimit,
	{"process/prefork", "many-slow-readers"}: poolLimit,
	{"process/prefork", "select-1024"}:       poolLimit,
	{"process/prefork", "idle-cost"}:         poolLimit,
}
