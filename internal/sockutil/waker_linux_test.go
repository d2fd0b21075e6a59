package sockutil

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestWaker checks that Wake makes the eventfd readable, Drain makes it not, and Wake after
// Close is a harmless no-op.
func TestWaker(t *testing.T) {
	w, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	readable := func() bool {
		fds := []unix.PollFd{{Fd: int32(w.FD()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if readable() {
		t.Fatal("a new Waker is readable")
	}
	for range 3 {
		if err := w.Wake(); err != nil {
			t.Fatal(err)
		}
	}
	if !readable() {
		t.Fatal("Wake did not make the eventfd readable")
	}
	w.Drain()
	if readable() {
		t.Fatal("Drain left the eventfd readable")
	}
	w.Close()
	if err := w.Wake(); err != nil {
		t.Fatalf("Wake after Close: %v", err)
	}
	w.Close()
}
