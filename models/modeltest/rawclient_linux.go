package modeltest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The EMFILE tests run a server out of file descriptors inside the test process. Their clients
// are raw blocking sockets created before the limit is lowered: a net.Conn would need
// descriptors of its own (for Go's netpoller) that the lowered limit refuses.

// RawSocket returns a blocking TCP socket with a receive timeout, so that a missing echo fails
// the test instead of hanging it. The caller closes it: closing it from a cleanup could close a
// number the server has reused by then.
func RawSocket(t testing.TB) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(ioTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd
}

// RawConnect connects the raw socket fd to addr, an IPv4 TCP address.
func RawConnect(t testing.TB, fd int, addr net.Addr) {
	t.Helper()
	ta := addr.(*net.TCPAddr)
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("connect fd %d to %s: %v", fd, addr, err)
	}
}

// RawEcho sends "ping" on the raw socket fd and checks that it comes back.
func RawEcho(t testing.TB, fd int, who string) {
	t.Helper()
	if _, err := unix.Write(fd, []byte("ping")); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	RawExpect(t, fd, "ping", who)
}

// RawExpect reads len(want) bytes from the raw socket fd and checks them.
func RawExpect(t testing.TB, fd int, want, who string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rawReader(fd), got); err != nil || string(got) != want {
		t.Fatalf("%s: got %q, %v; want %q", who, got, err, want)
	}
}

// rawReader reads a raw socket as an io.Reader, for io.ReadFull.
type rawReader int

func (fd rawReader) Read(p []byte) (int, error) {
	n, err := unix.Read(int(fd), p)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return max(n, 0), err
}

// LowerFDLimit sets this process's soft descriptor limit to cur and returns the function that
// restores it, which also runs when the test ends. With cur at 3 only stdin, stdout and stderr
// fit: every new descriptor in the process fails with EMFILE, even where a lower number comes free.
func LowerFDLimit(t testing.TB, cur uint64) (restore func()) {
	t.Helper()
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
				t.Errorf("restore RLIMIT_NOFILE: %v", err)
			}
		})
	}
	t.Cleanup(restore)
	low := saved
	low.Cur = cur
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	return restore
}

// WaitFor polls cond until it holds, or fails the test after ioTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(ioTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// LogLines collects a server's log lines that contain a substring, for tests that count how
// often a condition was logged. Its Logf goes into server.Config.
type LogLines struct {
	T        testing.TB
	Contains string
	mu       sync.Mutex
	lines    []string
}

// Logf logs the line to the test and keeps it if it contains l.Contains.
func (l *LogLines) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.T.Log(line)
	if strings.Contains(line, l.Contains) {
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
	}
}

// Count is how many kept lines there are.
func (l *LogLines) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}
