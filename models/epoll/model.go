package epoll

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "epoll",
		Summary:   "raw epoll: N level-triggered event loops, each on its own locked OS thread (the performance reference)",
		Start:     Start,
		Available: available,
	})
}
