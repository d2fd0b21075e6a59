package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"echobench/models/blocking"
	"echobench/models/process"
	"echobench/report"
	"echobench/server"
)

// DefaultRows are the models `make bench` compares. The pool rows use a pool of 128: smaller
// than the 1,000-connection cells on purpose, because that is what a pool does (the rest of the
// clients wait in the listen backlog and their messages stall); those cells are n/a for them,
// with that reason.
func DefaultRows() []Row {
	return []Row{
		{Name: "stdnet", Model: "stdnet"},
		{Name: "epoll", Model: "epoll"},
		{Name: "async", Model: "async"},
		{Name: "uring", Model: "uring"},
		{Name: "select", Model: "select"},
		{Name: "nonblocking", Model: "nonblocking"},
		{Name: "blocking", Model: "blocking"},
		{Name: "blocking/128", Model: "blocking", Server: server.Config{Pool: 128}},
		{Name: "process", Model: "process"},
		{Name: "prefork/128", Model: "process", Server: server.Config{Pool: 128}},
	}
}

// CRefName is the C reference server's row: the floor every chart shows.
const CRefName = "C-ref"

// CRefRow is the C reference epoll server (bench/reference/epoll_echo.c, built by `make
// reference` into binDir) as an external row. Without the binary the row is there, n/a with
// the reason, rather than silently gone.
func CRefRow(binDir string) Row {
	bin := filepath.Join(binDir, "epoll_echo")
	row := Row{Name: CRefName, Command: shellQuote(bin) + " -p {port}"}
	if _, err := os.Stat(bin); err != nil {
		row.Missing = fmt.Sprintf("%s is not built: `make reference` builds it and needs a C compiler (CC)", bin)
	}
	return row
}

// rowName is what a -server row may be called: it names files, so no slashes or spaces.
var rowName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// ParseServer parses a -server flag, 'NAME=COMMAND ...{port}...', into an external row.
func ParseServer(spec string) (Row, error) {
	name, command, ok := strings.Cut(spec, "=")
	name, command = strings.TrimSpace(name), strings.TrimSpace(command)
	switch {
	case !ok || name == "" || command == "":
		return Row{}, fmt.Errorf("-server %q: want NAME=COMMAND, such as 'myserver=./myserver -port {port}'", spec)
	case !rowName.MatchString(name):
		return Row{}, fmt.Errorf("-server %q: the name %q names files; use letters, digits and . _ + - only", spec, name)
	case !strings.Contains(command, "{port}"):
		return Row{}, fmt.Errorf("-server %q: the command has no {port}: the harness chooses a free loopback port and puts it there, so the server must listen on 127.0.0.1:{port}", spec)
	}
	return Row{Name: name, Command: command}, nil
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// selectReservedFDs are the descriptors below 1024 an echoserver running select holds before its
// first connection: stdio, the Go runtime's, the listener and the eventfd (the model's doc.go:
// "one echoserver process serves about 1015 clients at once").
const selectReservedFDs = 9

// Unsupported says why row cannot run cell, where the limit is known before running it; "" if
// it can. The limits are the models' own: select's FD_SETSIZE, the process model's child cap,
// the blocking model's thread ceiling, a pool's size; and for any row, the fd limit.
func Unsupported(row Row, cell Cell, cfg Config) string {
	if row.Missing != "" {
		return row.Missing
	}
	if cell.Sweep == SweepKnee && !cfg.Features.Knee {
		return fmt.Sprintf("%s has no -knee flag (an older build): `make build` updates it", cfg.Echobench)
	}
	n := cell.Conns
	if max := cfg.Limits.MaxConns(); max > 0 && n > max {
		return fmt.Sprintf("%d connections need more than the %d descriptors RLIMIT_NOFILE allows one process", n, cfg.Limits.NoFile)
	}
	if cell.Sweep == SweepUDP {
		if row.External() {
			return "an external server is started as a TCP server; the UDP cell is for models with a UDP variant"
		}
		if m, err := server.Lookup(row.Model); err == nil && m.StartUDP == nil {
			return fmt.Sprintf("%s has no UDP variant; models with one: %s", row.Model, strings.Join(server.UDPNames(), " "))
		}
	}
	if row.External() {
		return "" // an external server's limits are its own business; its results show them
	}
	pool := row.Server.Pool
	if cfg.Server.Pool > 0 && pool == 0 {
		pool = cfg.Server.Pool
	}
	switch {
	case row.Model == "select" && n+selectReservedFDs >= unix.FD_SETSIZE:
		return fmt.Sprintf("select(2) cannot watch fd %d or above (FD_SETSIZE) and %d connections need fds past it; use -model epoll",
			unix.FD_SETSIZE, n)
	case pool > 0 && !cell.Reconnect && n > pool:
		return fmt.Sprintf("a pool of %d serves %d of %d connections at a time; the other %d would wait in the listen backlog",
			pool, pool, n, n-pool)
	case row.Model == "process" && pool == 0 && n > process.DefaultMaxChildren:
		return fmt.Sprintf("process: at most %d connection processes run at once (process.DefaultMaxChildren); the other %d clients would wait in the backlog",
			process.DefaultMaxChildren, n-process.DefaultMaxChildren)
	case row.Model == "blocking" && pool == 0 && n > blocking.ThreadCeiling:
		return fmt.Sprintf("blocking: %d connections need %d threads, past the model's ceiling of %d (Go aborts a process at 10,000 threads)",
			n, n, blocking.ThreadCeiling)
	}
	return ""
}

// judge says why a run that produced a report is still not a result for the cell, or "".
//
// Connections established but never echoed in the window mean the figures are those of the
// connections served, not of the load asked for: a thread or process per connection that could
// not start them all in time, an event loop that starved some, select's ceiling. When most were
// served the run stands, and short says how many were not, for the notes under the table (a
// one-second window on a loaded machine leaves a few unserved in models that serve every one
// in a longer run: blocking 999 of 1,000, gnet 772 of 1,000 in a quick run). When half or more
// were not, the figures describe another load and the run is n/a; partial then says so, which
// the runner carries to the row's later cells (runner.carried). A pool's backlog is decided
// before running (Unsupported).
func judge(cell Cell, s report.Summary, knee *report.Knee) (reason, short string, partial bool) {
	switch {
	case knee != nil:
		return "", "", false // a knee of 0 (even the lowest rate failed the bound) is a result
	case s.Error != "" && s.MsgsPerSec == 0 && s.NewConnsPerSec == 0:
		return firstLine(s.Error), "", false
	case s.VerifyFailures > 0 || s.VerifyFailuresTotal > 0:
		return fmt.Sprintf("%d echoes came back wrong", s.VerifyFailuresTotal), "", false
	case cell.Reconnect:
		return "", "", false
	case cell.Sweep == SweepRate:
		// Past saturation some connections wait the whole window: that stall is what the
		// cell measures (the corrected latency and Incomplete show it), not a reason for n/a.
		return "", "", false
	}
	served := min(s.ConnsEstablished, s.ConnsEchoed)
	if served >= cell.Conns {
		return "", "", false
	}
	what := fmt.Sprintf("only %d of %d connections were echoed in the window", served, cell.Conns)
	if s.ConnsEstablished < cell.Conns {
		what += fmt.Sprintf(" (%d established, %d failed)", s.ConnsEstablished, s.ConnsFailed)
	}
	if s.ServerRejected > 0 {
		what += fmt.Sprintf(" (the server rejected %d)", s.ServerRejected)
	}
	if 2*served > cell.Conns {
		return "", what, false
	}
	return what + "; the rest waited", "", true
}
