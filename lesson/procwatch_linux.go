package lesson

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/procstat"
)

// Where a thread is, by the syscall it is blocked in (/proc/PID/task/TID/syscall): the two
// phases made visible. A thread waiting for data sleeps in a read-family call; one whose send
// cannot copy into a full socket buffer sleeps in a send-family call.
const (
	inRead    = "read"
	inSend    = "send"
	inAccept  = "accept"
	inOther   = "other syscall"
	notInCall = "running"
)

func syscallKind(nr int) string {
	switch nr {
	case unix.SYS_READ, unix.SYS_RECVFROM, unix.SYS_RECVMSG:
		return inRead
	case unix.SYS_WRITE, unix.SYS_SENDTO, unix.SYS_SENDMSG:
		return inSend
	case unix.SYS_ACCEPT, unix.SYS_ACCEPT4:
		return inAccept
	}
	return inOther
}

// threadsBySyscall counts pid's threads by where they are. /proc/PID/task/TID/syscall needs
// ptrace access, which a parent has over its own child; an error says what to do otherwise.
func threadsBySyscall(pid int) (map[string]int, error) {
	tids, err := procstat.Tasks(pid)
	if err != nil {
		return nil, fmt.Errorf("threads of %d: %w", pid, err)
	}
	counts := map[string]int{}
	for _, tid := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread exited between the listing and the read
			}
			return nil, fmt.Errorf("reading a thread's syscall (needs ptrace access to the server; see /proc/sys/kernel/yama/ptrace_scope): %w", err)
		}
		field, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		nr, err := strconv.Atoi(field)
		switch {
		case err != nil: // "running"
			counts[notInCall]++
		case nr < 0: // blocked, but not in a syscall (a page fault)
			counts[inOther]++
		default:
			counts[syscallKind(nr)]++
		}
	}
	return counts, nil
}

// cpuOver is the CPU share of pid's process tree over d, in percent of one core.
func cpuOver(pid int, d time.Duration) (float64, error) {
	a, _, err := procstat.SampleTree(pid, false)
	if err != nil {
		return 0, fmt.Errorf("sampling %d: %w", pid, err)
	}
	time.Sleep(d)
	b, _, err := procstat.SampleTree(pid, false)
	if err != nil {
		return 0, fmt.Errorf("sampling %d: %w", pid, err)
	}
	return 100 * float64(b.CPU()-a.CPU()) / float64(b.Time.Sub(a.Time)), nil
}

// dialAll opens n connections to addr; on error it closes the ones it opened.
func dialAll(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("connect %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// ping sends a small message on c and waits up to timeout for its echo.
func ping(c net.Conn, timeout time.Duration) bool {
	msg := []byte("ping")
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return false
	}
	got := make([]byte, len(msg))
	for n := 0; n < len(got); {
		m, err := c.Read(got[n:])
		if err != nil {
			return false
		}
		n += m
	}
	return string(got) == string(msg)
}
