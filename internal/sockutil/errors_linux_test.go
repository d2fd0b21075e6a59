package sockutil

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAcceptErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		err                 unix.Errno
		retryable, shortage bool
	}{
		{unix.EINTR, true, false},
		{unix.ECONNABORTED, true, false},
		{unix.ENETDOWN, true, false},
		{unix.EPROTO, true, false},
		{unix.ENOPROTOOPT, true, false},
		{unix.EHOSTDOWN, true, false},
		{unix.ENONET, true, false},
		{unix.EHOSTUNREACH, true, false},
		{unix.EOPNOTSUPP, true, false},
		{unix.ENETUNREACH, true, false},
		{unix.EPERM, true, false},
		{unix.EMFILE, false, true},
		{unix.ENFILE, false, true},
		{unix.ENOBUFS, false, true},
		{unix.ENOMEM, false, true},
		// A broken listener is neither: the caller must stop rather than retry.
		{unix.EBADF, false, false},
		{unix.EINVAL, false, false},
		{unix.ENOTSOCK, false, false},
	} {
		// Callers wrap errors with context; the classes must see through it.
		wrapped := fmt.Errorf("accept4 on fd 3: %w", tc.err)
		if got := IsAcceptRetryable(wrapped); got != tc.retryable {
			t.Errorf("IsAcceptRetryable(%v) = %v, want %v", tc.err, got, tc.retryable)
		}
		if got := IsResourceShortage(wrapped); got != tc.shortage {
			t.Errorf("IsResourceShortage(%v) = %v, want %v", tc.err, got, tc.shortage)
		}
	}
}

func TestIsPeerGone(t *testing.T) {
	for _, err := range []unix.Errno{unix.ECONNRESET, unix.EPIPE, unix.ETIMEDOUT} {
		if !IsPeerGone(fmt.Errorf("send on fd 7: %w", err)) {
			t.Errorf("IsPeerGone(%v) = false, want true", err)
		}
	}
	for _, err := range []unix.Errno{unix.EBADF, unix.EFAULT, unix.EAGAIN} {
		if IsPeerGone(err) {
			t.Errorf("IsPeerGone(%v) = true, want false", err)
		}
	}
}
