package loadgen

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// errnoName names an error the way the Result maps count it: the errno's symbolic name
// (ECONNREFUSED, EMFILE, ...), or EOF for an orderly close by the server.
func errnoName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		if name := unix.ErrnoName(en); name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	if errors.Is(err, io.EOF) {
		return "EOF"
	}
	return err.Error()
}
