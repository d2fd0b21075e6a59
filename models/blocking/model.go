package blocking

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "blocking",
		Summary:   "a locked OS thread per connection on blocking sockets (-pool N: N threads, the rest wait in the backlog)",
		Start:     Start,
		StartUDP:  StartUDP,
		Available: available,
		Procs:     procs,
	})
}

// procsCap is the GOMAXPROCS the model asks for in a process of its own (see procs).
const procsCap = 128

// procs is the GOMAXPROCS the model asks for when cmd/echoserver runs it. With Go's default of one
// P per CPU, a server pinned to one CPU has one P for all its threads (the package documentation
// says why that matters): while the thread that holds it sleeps in a syscall, the next waits for
// sysmon to take it back, and a thousand threads queue for it. 128 leaves enough Ps that the
// threads take turns on the CPU, the model's own cost, rather than queue for a P; far more lets a
// garbage collection start a worker on every idle P. A pool of N threads needs no more than N.
func procs(cfg server.Config) int {
	if cfg.Pool > 0 {
		return min(cfg.Pool, procsCap)
	}
	return procsCap
}

// available reports nil: threads and blocking sockets are everywhere.
func available() error { return nil }
