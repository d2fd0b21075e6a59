package child

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"echobench/server"
)

// statsPrefix starts a stats line; the rest of the line is a Snapshot as JSON.
const statsPrefix = "stats "

// Snapshot is what a stats line (and the stats port's GET /stats) carries: the server's own
// counters, and what the echoserver's process tree has cost so far. server.Stats is embedded, so
// its fields sit at the top of the same JSON object and a reader that knows only server.Stats
// (ParseStats) reads a line as it always did.
type Snapshot struct {
	server.Stats
	// Process is nil from an echoserver older than it, or one that could not read its own /proc.
	Process *Usage `json:"process,omitempty"`
}

// Usage is the echoserver's process tree (it and every child alive, for the models that fork)
// as the server itself read it from /proc at the snapshot (package procstat's tree accounting:
// a reaped child's CPU stays in its parent's). CPU and the counters beside it are cumulative, so
// the difference of two snapshots is what the server did between them.
type Usage struct {
	PID int `json:"pid"`
	// Started is when the echoserver started; with PID it says which server a snapshot is of.
	Started time.Time `json:"started"`
	// Time is when the snapshot was taken, on the server's clock.
	Time  time.Time `json:"time"`
	UserS float64   `json:"cpu_user_s"`
	SysS  float64   `json:"cpu_sys_s"`
	// RSSBytes is VmRSS summed over the tree now (pages shared between forked processes count
	// once per process); RootHWMBytes is the root process's own VmHWM, its peak RSS so far.
	RSSBytes     uint64 `json:"rss_bytes"`
	RootHWMBytes uint64 `json:"root_hwm_bytes"`
	Threads      int    `json:"threads"`   // summed over the tree
	Processes    int    `json:"processes"` // in the tree, the echoserver included
}

// writeAddr prints the address line, the child's first line on stdout.
func writeAddr(w io.Writer, addr net.Addr) {
	fmt.Fprintln(w, addr.String())
}

// ParseAddr reads the address line. It and ParseStats are exported for a parent that cannot start
// the child through Start, such as a tracer wrapped around it (internal/syscount).
func ParseAddr(line string) (string, error) {
	addr := strings.TrimSpace(line)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("first line %q is not the server's host:port: %w", line, err)
	}
	return addr, nil
}

// encodeSnapshot is the one JSON encoding of a snapshot, for the stats line and the stats port.
func encodeSnapshot(s Snapshot) []byte {
	b, _ := json.Marshal(s) // numbers and times only: it always encodes
	return b
}

// writeStats prints one stats line.
func writeStats(w io.Writer, s Snapshot) {
	fmt.Fprintf(w, "%s%s\n", statsPrefix, encodeSnapshot(s))
}

// ParseStats reads a stats line's server counters; ok is false for any other line, which the
// parent ignores (a model may print to stdout too).
func ParseStats(line string) (s server.Stats, ok bool) {
	snap, ok := ParseSnapshot(line)
	return snap.Stats, ok
}

// ParseSnapshot reads a whole stats line, the process tree's accounting included.
func ParseSnapshot(line string) (s Snapshot, ok bool) {
	text, found := strings.CutPrefix(line, statsPrefix)
	if !found {
		return Snapshot{}, false
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return Snapshot{}, false
	}
	return s, true
}
