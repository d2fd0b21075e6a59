// Package syscount is `make syscalls`: it runs one fixed workload against every model, each
// server counted on its own by a syscall tracer (perf stat by default, strace -f -c as the
// fallback), and tabulates the syscalls, context switches and CPU that one echoed message costs.
// The table is the evidence for models/FAIRNESS.md and for what each model's doc.go says about
// its syscalls.
package syscount

import (
	"fmt"
	"io"
	"os/exec"
)

// Calls counts syscalls by name.
type Calls map[string]uint64

// Counts are the syscalls of one traced server life, every thread and process of it.
type Counts struct {
	Calls Calls  // by name; a tracer that counts a fixed list of calls names only those
	Total uint64 // every call, named in Calls or not
}

// A Tracer counts the syscalls of a server and of everything the server starts. The server is
// the tracer's one child; the tracer writes its counts to a file once the server has exited.
type Tracer interface {
	// Name is the tracer as -tracer names it: "perf" or "strace".
	Name() string
	// Version is the tracer's version line, for the table's conditions.
	Version() string
	// Named are the calls it counts by name; nil when it names every call it sees.
	Named() []string

	// command runs argv under the tracer, which writes its counts to the file out.
	command(out string, argv []string) *exec.Cmd
	// parse reads that file.
	parse(r io.Reader) (Counts, error)
}

// Tracers are the names FindTracer takes, the default first.
var Tracers = []string{"perf", "strace"}

// FindTracer returns the named tracer, checked to be installed and able to count here.
func FindTracer(name string) (Tracer, error) {
	switch name {
	case "perf":
		return findPerf()
	case "strace":
		return findStrace()
	}
	return nil, fmt.Errorf("no tracer %q; -tracer takes %v", name, Tracers)
}
