package epoll

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "epoll",
		Summary:   "raw epoll: N level-triggered event loops, each on its own locked OS thread (the performance reference)",
		Start:     Start,
		StartUDP:  StartUDP,
		Available: available,
	})
}

// available reports nil: epoll(7) and EPOLLEXCLUSIVE (Linux 4.5) are in every kernel the suite
// supports; newLoop says what to do if the flag is missing.
func available() error { return nil }
