package uring

import (
	"sync"

	"echobench/server"
)

func init() {
	server.Register(server.Model{
		Name:      "uring",
		Summary:   "io_uring: one completion ring per thread; the kernel waits for data and copies it (Linux)",
		Start:     start,
		StartUDP:  startUDP,
		Available: available,
	})
}

var (
	probeOnce sync.Once
	probeErr  error
)

// available probes io_uring once per process by setting up a tiny ring.
func available() error {
	probeOnce.Do(func() { probeErr = probe() })
	return probeErr
}
