//go:build !linux

package selectmodel

import (
	"errors"

	"echobench/server"
)

// errNotLinux says why the model cannot run here: the event loop is written against Linux's
// fd_set layout and eventfd(2).
var errNotLinux = errors.New("the select model is implemented for Linux only")

func available() error { return errNotLinux }

func start(server.Config) (server.Server, error) { return nil, errNotLinux }
