package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
)

// IO is a process's byte counters from /proc/PID/io: what its read and write system calls moved.
//
// rchar and wchar, not read_bytes and write_bytes: the latter count only what reached or came
// from storage, so socket traffic never shows there, while rchar and wchar count the bytes every
// read(2), readv(2), pread(2), write(2), writev(2), pwrite(2) and sendfile(2) returned, on any
// fd, sockets included. That makes them the kernel's own count of a server's socket bytes for a
// server that has none of its own, with two caveats a reader of the figures must keep in mind:
//
//   - They count more than sockets: file, pipe, terminal and eventfd reads and writes too (a log
//     line, an 8-byte eventfd wake-up, a helper process reading its binary's config). A server's
//     start-up reads happen before a measured run's first sample and are not in its delta.
//   - They miss what does not pass through those calls: send(2), sendto(2), sendmsg(2), recv(2),
//     recvfrom(2), recvmsg(2), splice(2) (which Go's io.Copy between two TCP connections uses)
//     and io_uring. A server that echoes with send(2), like bench/reference/epoll_echo.c, shows
//     its reads but not its writes.
//
// /proc/PID/io sums every thread of the process, the exited ones included, and, like cutime for
// CPU, every child the process has reaped: the kernel adds a child's counters to its parent's
// when the parent waits for it, and until then the zombie's own file still shows them.
type IO struct {
	RChar uint64 // bytes returned by read-family calls
	WChar uint64 // bytes accepted by write-family calls
}

// ReadIO reads one process's /proc/PID/io. Reading another user's process needs the same
// permission as ptrace-reading it.
func ReadIO(pid int) (IO, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return IO{}, fmt.Errorf("read /proc/%d/io: %w", pid, ErrGone)
		}
		return IO{}, fmt.Errorf("read /proc/%d/io: %w (it needs ptrace-read permission on the process: run as its user or root)", pid, err)
	}
	return parseIO(pid, b)
}

func parseIO(pid int, b []byte) (IO, error) {
	var io IO
	var seen int
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var field *uint64
		switch string(key) {
		case "rchar":
			field = &io.RChar
		case "wchar":
			field = &io.WChar
		default:
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("parse /proc/%d/io %s: %w", pid, key, err)
		}
		*field = n
		seen++
	}
	if seen != 2 {
		return IO{}, fmt.Errorf("parse /proc/%d/io: no rchar and wchar lines (kernel without CONFIG_TASK_IO_ACCOUNTING?)", pid)
	}
	return io, nil
}

// TreeIO sums ReadIO over root and its live descendants. A descendant that exits during the walk
// is skipped; once reaped, its bytes are in its parent's counters (see IO). A child reaped
// between the reads of its parent and of itself is in neither, so a caller after a figure that
// must not fall short reads the tree twice and keeps the larger (MaxIO).
func TreeIO(root int) (IO, error) {
	pids, err := Descendants(root)
	if err != nil && len(pids) == 0 {
		return IO{}, err
	}
	var sum IO
	for _, pid := range pids {
		io, err := ReadIO(pid)
		if err != nil {
			if pid == root || !errors.Is(err, ErrGone) {
				return IO{}, err
			}
			continue
		}
		sum.RChar += io.RChar
		sum.WChar += io.WChar
	}
	return sum, nil
}

// MaxIO is each counter's larger value of a and b.
func MaxIO(a, b IO) IO {
	return IO{RChar: max(a.RChar, b.RChar), WChar: max(a.WChar, b.WChar)}
}
