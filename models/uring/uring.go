package uring

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "uring",
		Summary:   "io_uring: one completion ring per thread; the kernel waits for data and copies it (Linux)",
		Start:     start,
		Available: available,
	})
}
