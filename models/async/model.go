//go:build !poll_opt

package async

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:    "async",
		Summary: "gnet v2 reactor: N event loops, each one epoll instance and one shared read buffer",
		Start:   Start,
	})
}
