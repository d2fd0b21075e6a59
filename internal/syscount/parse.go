// Package syscount is `make syscalls`: it runs one fixed workload against every model, each
// server traced on its own with `strace -f -c`, and tabulates the syscalls, context switches and
// CPU that one echoed message costs. The table is the evidence for models/FAIRNESS.md and for
// what each model's doc.go says about its syscalls.
package syscount

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Calls counts syscalls by name.
type Calls map[string]uint64

// Total is the number of calls of every name.
func (c Calls) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// header is the column header of the strace -c table this parser reads. strace prints one
// table per syscall personality (a second one, headed "System call usage summary for 32 bit
// mode:", when a 64-bit process also makes 32-bit calls); each starts with this header.
var header = []string{"%", "time", "seconds", "usecs/call", "calls", "errors", "syscall"}

// Parse reads the summary strace -c writes and returns the calls per syscall, summed over its
// tables. The total rows are left out; Calls.Total adds up the rest.
//
// A row is "% time, seconds, usecs/call, calls, errors, syscall", right-aligned numbers; the
// errors column is blank when a call never failed, so a row has five or six fields and the
// calls are always the fourth. The total row has no usecs/call and is recognised by its name.
func Parse(r io.Reader) (Calls, error) {
	calls := Calls{}
	tables := 0
	inTable := false
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && fields[0] == "%":
			if strings.Join(fields, " ") != strings.Join(header, " ") {
				return nil, fmt.Errorf("strace -c line %d: header %q, want %q (strace options that change the columns are not supported)", line, sc.Text(), strings.Join(header, " "))
			}
			tables++
			inTable = true
			continue
		case !inTable || len(fields) == 0 || strings.HasPrefix(fields[0], "---"):
			continue
		case fields[len(fields)-1] == "total":
			inTable = false
			continue
		}
		if len(fields) != 5 && len(fields) != 6 {
			return nil, fmt.Errorf("strace -c line %d: %q is not a syscall row", line, sc.Text())
		}
		n, err := strconv.ParseUint(fields[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("strace -c line %d: calls %q: %w", line, fields[3], err)
		}
		calls[fields[len(fields)-1]] += n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read strace -c summary: %w", err)
	}
	if tables == 0 {
		return nil, fmt.Errorf("no strace -c table found (did the traced server start?)")
	}
	return calls, nil
}
