package sockutil

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNonblockCalls checks the raw calls on a non-blocking stream pair: EAGAIN when there is
// nothing to read, the bytes when there are, and EPIPE rather than a SIGPIPE (which would kill
// the test binary) once the peer has gone.
func TestNonblockCalls(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	defer unix.Close(a)

	buf := make([]byte, 16)
	if n, err := ReadNonblock(a, buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read with nothing queued: n=%d err=%v, want EAGAIN", n, err)
	}
	if n, err := SendNonblock(b, []byte("ping")); n != 4 || err != nil {
		t.Fatalf("send: n=%d err=%v, want 4 bytes", n, err)
	}
	if n, err := ReadNonblock(a, buf); err != nil || !bytes.Equal(buf[:n], []byte("ping")) {
		t.Fatalf("read: %q, %v; want \"ping\"", buf[:n], err)
	}
	unix.Close(b)
	if n, err := ReadNonblock(a, buf); n != 0 || err != nil {
		t.Fatalf("read after the peer closed: n=%d err=%v, want end of stream", n, err)
	}
	if _, err := SendNonblock(a, []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("send to a closed peer: %v, want EPIPE", err)
	}
}

// TestBlockingCalls checks the runtime-aware pair on a blocking stream pair: Read waits for the
// bytes Send wrote, and Send to a peer that has gone fails with EPIPE, not SIGPIPE.
func TestBlockingCalls(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := fds[0], fds[1]
	defer unix.Close(a)
	go func() {
		if _, err := Send(b, []byte("ping")); err != nil {
			t.Errorf("send: %v", err)
		}
	}()
	buf := make([]byte, 4)
	for got := 0; got < len(buf); {
		n, err := Read(a, buf[got:])
		if err != nil || n == 0 {
			t.Fatalf("read: n=%d err=%v after %q", n, err, buf[:got])
		}
		got += n
	}
	if !bytes.Equal(buf, []byte("ping")) {
		t.Fatalf("read %q, want \"ping\"", buf)
	}
	unix.Close(b)
	if n, err := Read(a, buf); n != 0 || err != nil {
		t.Fatalf("read after the peer closed: n=%d err=%v, want end of stream", n, err)
	}
	if _, err := Send(a, []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("send to a closed peer: %v, want EPIPE", err)
	}
}
