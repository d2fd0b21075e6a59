package selectmodel

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "select",
		Summary:   "select(2): one locked thread multiplexing non-blocking sockets, fds below 1024 only",
		Start:     start,
		Available: available,
	})
}

// available reports nil: select(2) is in every Linux kernel.
func available() error { return nil }
