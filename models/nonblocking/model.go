package nonblocking

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "nonblocking",
		Summary:   "one thread busy-polling non-blocking sockets: accept, read, write, retry on EAGAIN (burns a core)",
		Start:     Start,
		Available: available,
	})
}

// available reports nil: the model needs nothing beyond non-blocking sockets.
func available() error { return nil }
