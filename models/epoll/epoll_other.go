//go:build !linux

package epoll

import (
	"errors"
	"fmt"

	"echobench/server"
)

var errNotLinux = errors.New("epoll(7) exists only on Linux; use -model stdnet here")

func available() error { return errNotLinux }

// Start reports that the model cannot run on this platform.
func Start(cfg server.Config) (server.Server, error) {
	return nil, fmt.Errorf("epoll: %w", errNotLinux)
}
