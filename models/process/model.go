package process

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"echobench/internal/reexec"
	"echobench/server"
)

func init() {
	server.Register(server.Model{
		Name:      "process",
		Summary:   "a process per connection (fork+exec of this binary, inetd-style), or a prefork pool with -pool N",
		Start:     Start,
		Available: available,
	})
	reexec.Register(reexecRole, runChild)
}

// reexecRole is the reexec role under which this binary, re-executed, is a child.
const reexecRole = "process-child"

// available reports whether this binary can find itself to re-execute as a child.
func available() error {
	if _, err := os.Executable(); err != nil {
		return fmt.Errorf("cannot find this binary to re-execute as a child: %w", err)
	}
	return nil
}

// DefaultMaxChildren caps how many connection processes run at once when Config.Pool is 0. Each
// costs a Go runtime of a few MiB, several threads and two fds in the parent (its pidfd and its
// report pipe), so 4096 children are already several GiB; past the cap new connections wait in
// the listen backlog instead of exhausting memory or the parent's fd limit. The cap is lowered
// to what the parent's RLIMIT_NOFILE can hold, if that is less.
const DefaultMaxChildren = 4096

// acceptBackoff paces accept and fork retries after a resource error (EMFILE, ENFILE, ENOMEM,
// EAGAIN from fork): retrying at once would spin a core on an error that only goes away when
// some connection or process ends. The backlog holds the waiting clients meanwhile.
const acceptBackoff = 50 * time.Millisecond

// terminateGrace is how long Close waits after SIGTERM before it SIGKILLs a child. A child shuts
// its connection down on SIGTERM and reports its counts within milliseconds; the grace only
// matters for a child wedged in a way we did not foresee.
const terminateGrace = 2 * time.Second

// minWorkerLife and restartBackoff keep a prefork worker that dies at once (a bad binary, an
// exhausted process table) from being restarted in a tight loop.
const (
	minWorkerLife  = time.Second
	restartBackoff = 100 * time.Millisecond
)

// maxQuickDeaths is how many prefork workers in a row may die younger than minWorkerLife before
// the server gives up and fails. One or two quick deaths are an accident the pool survives (an
// operator's kill, the OOM killer taking a fresh worker); five in a row, with no worker living
// a second in between, mean a replacement cannot live at all (a bad binary, a listener that
// accept rejects), and replacing it forever would hide that behind a server that serves nothing.
const maxQuickDeaths = 5

// A connection child reports its bytes while the connection lives, not only when it ends, once
// progressBytes have moved or progressEvery has passed since its last report, so that a stats
// line taken mid-run counts long-lived connections. Either bound alone costs one 17-byte pipe
// write, small beside the megabytes or the second of echoing it covers.
const (
	progressBytes = 64 << 20
	progressEvery = time.Second
)

const (
	roleConn   = "conn"   // serve the connection on childSocketFD, then exit
	roleWorker = "worker" // accept on the listener at childSocketFD, one connection at a time, forever
)

// The descriptors a child finds open: exec.Cmd.ExtraFiles[i] becomes fd 3+i.
const (
	childSocketFD = 3 // the accepted connection (roleConn) or the shared listener (roleWorker)
	childReportFD = 4 // the write end of the child's report pipe
)

// A record is what a child tells its parent over the report pipe: that a prefork worker accepted
// a connection, that a connection moved bytes (progress), or that it ended, with the bytes it
// moved since its last report. A record is 17 bytes, well
// under PIPE_BUF (4096), so each write(2) of one is atomic: the parent never sees half a record,
// even from a child killed mid-write.
type record struct {
	kind    byte
	in, out uint64
}

const (
	recOpened   byte = 1
	recClosed   byte = 2
	recProgress byte = 3
)

const recordSize = 17

func (r record) encode() []byte {
	b := make([]byte, recordSize)
	b[0] = r.kind
	binary.LittleEndian.PutUint64(b[1:], r.in)
	binary.LittleEndian.PutUint64(b[9:], r.out)
	return b
}

func decodeRecord(b []byte) record {
	return record{kind: b[0], in: binary.LittleEndian.Uint64(b[1:]), out: binary.LittleEndian.Uint64(b[9:])}
}
