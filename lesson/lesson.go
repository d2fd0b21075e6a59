package lesson

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// SeedsDir is where the notes are, relative to the repository: the README's "../shared/seeds/".
const SeedsDir = "../shared/seeds"

// Quote is one claim of the notes: where it is, what it says, and what that means in English.
type Quote struct {
	File    string // file name under SeedsDir
	Line    int    // 1-based
	Chinese string // the line, or the part of it that makes the claim, verbatim
	English string // our translation
}

// The notes' files, by the number they start with.
const (
	notes000 = "000_6847b3ad71f3cdc5.txt" // processes; the JSON header fix for sticky packets
	notes001 = "001_f98fc25701ce5fef.txt" // sockets, sticky packets, UDP, socketserver, threads, pools
	notes002 = "002_58ba82c452fac233.txt" // the IO models chapter
	notes003 = "003_6dba2c5ef8b25738.txt" // socketserver, TCP and UDP
)

// Figure is one measured value, with its unit; Note says where it comes from when the name does not.
type Figure struct {
	Name  string
	Value float64
	Unit  string
	Note  string
}

// Outcome is the kind of a verdict.
type Outcome int

const (
	NotMeasurable Outcome = iota // the experiment could not decide: a flag without effect yet, a model unavailable
	Holds
	DoesNotHold
	HoldsOnlyWhen
)

func (o Outcome) String() string {
	switch o {
	case Holds:
		return "holds"
	case DoesNotHold:
		return "does not hold"
	case HoldsOnlyWhen:
		return "holds only when"
	}
	return "not measurable yet"
}

// Verdict is a judge's decision: the outcome, the condition of a HoldsOnlyWhen, and Why, the rule
// applied to the figures in words with the figures in it.
type Verdict struct {
	Outcome   Outcome
	Condition string
	Why       string
}

// Text is the verdict as the lesson prints it.
func (v Verdict) Text() string {
	if v.Outcome == HoldsOnlyWhen {
		return "holds only when " + v.Condition
	}
	return v.Outcome.String()
}

// TestRun is one `go test` the lesson ran, and whether it passed.
type TestRun struct {
	Command string
	Passed  bool
	Output  string // the tail of its output
}

// Finding is what an experiment found.
type Finding struct {
	Commands []string  // every command it ran, in order, as a reader would type it
	Figures  []Figure  // what it measured
	Tests    []TestRun // the go tests it ran, for the claims tests make
	Notes    []string  // conditions and caveats a reader needs beside the figures
	Raw      []string  // files under the run's directory holding the raw data
	Verdict  Verdict
	Elapsed  time.Duration
}

// Experiment is one claim run against the models.
type Experiment struct {
	ID     int
	Title  string
	Claims []Quote
	// Method says in a few sentences what the experiment does and why that tests the claim.
	Method string
	// Rule is the verdict rule in words; the judge function beside the experiment is its code.
	Rule string
	// Budget bounds the experiment's wall time; the whole lesson must stay under ten minutes.
	Budget time.Duration
	Run    func(t *Trial) (Finding, error)
}

var registry = map[int]*Experiment{}

// register adds an experiment; each claim file registers its own in init.
func register(e *Experiment) {
	if _, dup := registry[e.ID]; dup {
		panic(fmt.Sprintf("lesson: experiment %d registered twice", e.ID))
	}
	registry[e.ID] = e
}

// Experiments returns every registered experiment in claim order.
func Experiments() []*Experiment {
	out := make([]*Experiment, 0, len(registry))
	for _, e := range registry {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TotalBudget is the sum of the experiments' budgets.
func TotalBudget(es []*Experiment) time.Duration {
	var d time.Duration
	for _, e := range es {
		d += e.Budget
	}
	return d
}

// ratio is a/b, NaN when b is not positive: a ratio to nothing says nothing.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}
