// Package procstat accounts for what a process tree costs: CPU seconds, resident memory, threads,
// processes and context switches, read from /proc while the tree runs.
//
// The tree is a root process and every descendant alive at the moment of a sample, found through
// /proc/PID/task/TID/children. A server's cost is the cost of the whole tree because some models
// (a process per connection, helper processes) do their work in children.
//
// CPU of the tree is the sum, over the processes alive at a sample, of utime+stime (the process's
// own threads, the dead ones included) plus cutime+cstime (every child it has reaped, and
// everything those children had reaped in turn). A child that exits between two samples therefore
// does not take its CPU with it: the kernel adds it to the parent's cutime/cstime when the parent
// waits for it, and until then the zombie's own /proc/PID/stat still shows it. The figure loses
// only children that were never waited for by a process in the tree (a parent that ignores
// SIGCHLD, or an orphan re-parented to init), which echobench's models do not produce.
//
// Peaks (RSS, threads, processes) are seen only at sample instants, so the sampler runs every
// SampleInterval; a spike shorter than that can be missed. RSS is the sum of VmRSS over the tree,
// which counts pages shared between forked processes once per process: for the process models it
// is an upper bound, not the memory actually used.
package procstat

import (
	"errors"
	"time"
)

// SampleInterval is how often a Sampler reads the tree: often enough that a peak lasting a few
// hundred milliseconds is seen, rarely enough that reading a thousand-process tree stays a small
// fraction of one core.
const SampleInterval = 150 * time.Millisecond

// ErrGone is returned when the root process no longer exists.
var ErrGone = errors.New("process gone")

// Proc is one process's counters.
type Proc struct {
	PID        int
	PPID       int
	State      byte   // R, S, D, Z, ...
	UserTicks  uint64 // utime: this process's threads, in clock ticks
	SysTicks   uint64 // stime
	CUserTicks uint64 // cutime: children this process has reaped
	CSysTicks  uint64 // cstime
	Threads    int
	RSSBytes   uint64 // VmRSS now
	HWMBytes   uint64 // VmHWM: this process's own peak RSS, as the kernel saw it
}

// Tree is one sample of a whole process tree.
type Tree struct {
	Time      time.Time
	Processes int           // processes alive in the tree, root included
	Threads   int           // threads summed over the tree
	RSSBytes  uint64        // VmRSS summed over the tree
	User      time.Duration // utime+cutime summed over the tree
	Sys       time.Duration // stime+cstime summed over the tree
	// Voluntary and Involuntary are context switches summed over every live thread of every
	// process. They are read only when asked for (one file per thread), and they miss threads
	// that have already exited; a parent that owns the root can get exact lifetime totals from
	// wait4's rusage instead.
	Voluntary   uint64
	Involuntary uint64
}

// CPU is user plus system time.
func (t Tree) CPU() time.Duration { return t.User + t.Sys }

// Peaks are the largest values a Sampler has seen.
type Peaks struct {
	Processes int    `json:"processes"`
	Threads   int    `json:"threads"`
	RSSBytes  uint64 `json:"rss_bytes"`
	// RootHWMBytes is the root process's own VmHWM, the kernel's exact peak for that one process,
	// seen between samples too.
	RootHWMBytes uint64 `json:"root_hwm_bytes"`
	Samples      int    `json:"samples"`
}

func (p *Peaks) fold(t Tree, rootHWM uint64) {
	p.Processes = max(p.Processes, t.Processes)
	p.Threads = max(p.Threads, t.Threads)
	p.RSSBytes = max(p.RSSBytes, t.RSSBytes)
	p.RootHWMBytes = max(p.RootHWMBytes, rootHWM)
	p.Samples++
}
