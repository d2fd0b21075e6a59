//go:build !linux

package async

import (
	"errors"

	"echobench/server"
)

func init() {
	server.Register(server.Model{
		Name:    "async",
		Summary: "gnet v2 reactor (Linux only)",
		Start: func(server.Config) (server.Server, error) {
			return nil, errors.New("async: this model pauses reads through gnet's epoll instance and runs on Linux only")
		},
		Available: func() error {
			return errors.New("the async model reaches into gnet's epoll instance and runs on Linux only")
		},
	})
}
