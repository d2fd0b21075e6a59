//go:build !linux

package uring

import (
	"errors"
	"fmt"

	"echobench/server"
)

var errNotLinux = errors.New("io_uring is a Linux interface; on this system use -model stdnet")

func available() error { return errNotLinux }

func start(server.Config) (server.Server, error) {
	return nil, fmt.Errorf("uring: %w: %v", server.ErrUnavailable, errNotLinux)
}
