package sockutil

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// A Waker is an eventfd that an event loop watches beside its sockets and that Close writes to,
// so that a loop asleep in select, epoll_wait or io_uring_enter returns and sees it should stop.
// An eventfd rather than a self-pipe: one fd, and a write that cannot fill it up.
//
// Wake may be called from any goroutine, any number of times, before or after Close; the loop
// that owns the Waker calls Drain and, once no loop watches it any more, Close. The lock keeps a
// late Wake from writing to the fd after Close, when its number may belong to another file.
type Waker struct {
	fd int // set once by NewWaker; read by the owner without the lock

	mu     sync.Mutex
	closed bool
}

// NewWaker opens a non-blocking, close-on-exec eventfd.
func NewWaker() (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &Waker{fd: fd}, nil
}

// FD is the eventfd, to watch for readability.
func (w *Waker) FD() int { return w.fd }

// Wake makes the eventfd readable. It does nothing once Close has been called.
func (w *Waker) Wake() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(w.fd, one[:])
		switch {
		case err == nil, errors.Is(err, unix.EAGAIN):
			// EAGAIN means the counter is at its maximum: the eventfd is readable already.
			return nil
		case errors.Is(err, unix.EINTR):
			continue // interrupted before the counter was added to: add it now
		}
		return fmt.Errorf("write eventfd %d: %w", w.fd, err)
	}
}

// Drain resets the eventfd to not readable. EAGAIN means it was not readable; nothing else can
// fail on an eventfd that is open.
func (w *Waker) Drain() {
	var b [8]byte
	for {
		if _, err := unix.Read(w.fd, b[:]); !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Close closes the eventfd; a later Wake does nothing.
func (w *Waker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		unix.Close(w.fd)
	}
}
