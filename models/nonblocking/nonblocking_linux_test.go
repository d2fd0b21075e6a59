package nonblocking_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"echobench/models/modeltest"
	"echobench/server"

	_ "echobench/models/nonblocking"
)

func TestConformance(t *testing.T) {
	modeltest.Run(t, "nonblocking", modeltest.Options{})
}

// TestAcceptEMFILE runs the server out of file descriptors: accept is retried every pass, but the
// failure must be logged once, not every pass, and a client waiting in the backlog must be served
// once descriptors are free again.
func TestAcceptEMFILE(t *testing.T) {
	var mu sync.Mutex
	var acceptLogs []string
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log(line)
		if strings.Contains(line, "accept4") {
			mu.Lock()
			acceptLogs = append(acceptLogs, line)
			mu.Unlock()
		}
	}
	loggedFailures := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acceptLogs)
	}
	srv := modeltest.Start(t, "nonblocking", server.Config{Logf: logf})
	// The client is a raw blocking socket, created before the limit is lowered: a net.Conn
	// would need descriptors of its own (for Go's netpoller) that the limit refuses.
	client := rawSocket(t)
	defer unix.Close(client)

	// With the limit at 3 only stdin, stdout and stderr fit: every new descriptor in this
	// process fails with EMFILE, even where a lower number comes free.
	lowerFDLimit(t, 3)
	rawConnect(t, client, sockaddr(srv.Addr()))
	if _, err := unix.Write(client, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a logged accept failure", func() bool { return loggedFailures() > 0 })
	// Many thousands of passes go by, each retrying accept, but one burst is logged once.
	time.Sleep(500 * time.Millisecond)
	if n := loggedFailures(); n != 1 {
		t.Errorf("accept failure logged %d times during one EMFILE burst, want once", n)
	}
	restoreFDLimit(t)
	got := make([]byte, 4)
	if _, err := io.ReadFull(rawConn(client), got); err != nil || string(got) != "ping" {
		t.Fatalf("client that waited out EMFILE: got %q, %v", got, err)
	}
}

var saved unix.Rlimit

// lowerFDLimit sets this process's soft descriptor limit to cur until restoreFDLimit or the end
// of the test.
func lowerFDLimit(t *testing.T, cur uint64) {
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restoreFDLimit(t) })
	low := saved
	low.Cur = cur
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
}

func restoreFDLimit(t *testing.T) {
	if saved.Cur == 0 {
		return
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func sockaddr(a net.Addr) *unix.SockaddrInet4 {
	ta := a.(*net.TCPAddr)
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	return sa
}

func rawSocket(t *testing.T) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A receive timeout makes a missing echo fail the test instead of hanging it.
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func rawConnect(t *testing.T, fd int, sa unix.Sockaddr) {
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatalf("connect fd %d: %v", fd, err)
	}
}

// rawConn reads a raw socket as an io.Reader, for io.ReadFull.
type rawConn int

func (fd rawConn) Read(p []byte) (int, error) {
	n, err := unix.Read(int(fd), p)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return max(n, 0), err
}
