package child

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"

	"echobench/server"
)

// statsPrefix starts a stats line; the rest of the line is server.Stats as JSON.
const statsPrefix = "stats "

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

// writeStats prints one stats line, with this process's goroutine count.
func writeStats(w io.Writer, s server.Stats) {
	s.Goroutines = runtime.NumGoroutine()
	b, _ := json.Marshal(s) // server.Stats holds only numbers: it always encodes
	fmt.Fprintf(w, "%s%s\n", statsPrefix, b)
}

// ParseStats reads a stats line; ok is false for any other line, which the parent ignores (a
// model may print to stdout too).
func ParseStats(line string) (s server.Stats, ok bool) {
	text, found := strings.CutPrefix(line, statsPrefix)
	if !found {
		return server.Stats{}, false
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return server.Stats{}, false
	}
	return s, true
}
