//go:build !linux

package nonblocking

import (
	"errors"

	"echobench/server"
)

var errNotLinux = errors.New("the nonblocking model is written against Linux syscalls; run it on Linux")

func available() error { return errNotLinux }

// Start fails: see available.
func Start(server.Config) (server.Server, error) { return nil, errNotLinux }
