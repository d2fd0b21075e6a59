package sockutil

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAcceptPending queues more clients than one batch takes and checks that AcceptPending takes
// exactly a batch, hands each connection over non-blocking, close-on-exec and with TCP_NODELAY
// on, takes the rest on the next call, and returns nil once the backlog is empty.
func TestAcceptPending(t *testing.T) {
	lfd, bound, err := Listen("127.0.0.1:0", ListenOptions{Nonblocking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	const clients = AcceptBatch + 3
	for range clients {
		c, err := net.Dial("tcp", bound.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(fd int) { fds = append(fds, fd) }
	logf := func(format string, args ...any) { t.Errorf("unexpected log: "+format, args...) }
	if n, err := AcceptPending(lfd, open, logf); n != AcceptBatch || err != nil {
		t.Fatalf("first call: %d accepted, %v; want a batch of %d", n, err, AcceptBatch)
	}
	if n, err := AcceptPending(lfd, open, logf); n != clients-AcceptBatch || err != nil {
		t.Fatalf("second call: %d accepted, %v; want the other %d", n, err, clients-AcceptBatch)
	}
	if n, err := AcceptPending(lfd, open, logf); n != 0 || err != nil {
		t.Fatalf("empty backlog: %d accepted, %v; want 0 and no error", n, err)
	}
	for _, fd := range fds {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK == 0 {
			t.Errorf("accepted fd %d: flags %#x, %v; want O_NONBLOCK", fd, fl, err)
		}
		fdfl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || fdfl&unix.FD_CLOEXEC == 0 {
			t.Errorf("accepted fd %d: fd flags %#x, %v; want FD_CLOEXEC", fd, fdfl, err)
		}
		if on, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || on == 0 {
			t.Errorf("accepted fd %d: TCP_NODELAY %d, %v; want it on", fd, on, err)
		}
	}
}

// TestAcceptPendingBrokenListener checks that an error of the listener itself ends the batch and
// is returned with its errno, for the caller to tell from a resource shortage.
func TestAcceptPendingBrokenListener(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// A socket that is not listening: accept4 fails with EINVAL.
	n, err := AcceptPending(fd, func(int) { t.Error("open called") }, t.Logf)
	if n != 0 || err == nil || IsResourceShortage(err) || IsAcceptRetryable(err) {
		t.Fatalf("accept on a socket that does not listen: %d, %v; want a listener error", n, err)
	}
}
