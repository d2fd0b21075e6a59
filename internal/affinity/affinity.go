// Package affinity pins processes to CPUs, so that a load generator and the server it measures do
// not compete for the same core.
//
// sched_setaffinity(2) acts on one thread. Pinning a running process therefore means pinning each
// of its threads, listed in /proc/PID/task; a thread created afterwards inherits the mask of the
// thread that created it, so once every thread is pinned the process stays pinned. A process
// started from a thread that is already pinned starts pinned, and so does everything it forks.
package affinity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxCPU bounds the CPU numbers a list may name; it is the size of the kernel's default cpu_set_t.
const maxCPU = 1024

// ParseList parses a CPU list in the kernel's format: "0", "1,3", "0-3", "0-1,4". The result is
// sorted and without duplicates.
func ParseList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("CPU list %q: empty element", s)
		}
		loText, hiText, isRange := strings.Cut(part, "-")
		lo, err := strconv.Atoi(loText)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, loText)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.Atoi(hiText); err != nil {
				return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, hiText)
			}
		}
		if lo < 0 || hi < lo || hi >= maxCPU {
			return nil, fmt.Errorf("CPU list %q: %q is not a range of CPUs 0-%d", s, part, maxCPU-1)
		}
		for c := lo; c <= hi; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// Format writes a CPU list back in the kernel's format, ranges folded: [0 1 2 5] is "0-2,5".
func Format(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i {
			fmt.Fprintf(&b, "%d", cpus[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", cpus[i], cpus[j])
		}
		i = j + 1
	}
	return b.String()
}
