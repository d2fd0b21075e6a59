// Command echoserver runs one echobench IO model as its own process.
//
//	echoserver -model epoll -addr 127.0.0.1:0
//
// The first line on stdout is the bound address. SIGUSR1 prints a "stats {json}" line (its counters
// and its process tree's CPU, RSS and threads); -stats-addr 127.0.0.1:PORT serves the same JSON at
// GET /stats. SIGINT or SIGTERM stops the server cleanly. echoserver -list shows the models.
package main

import (
	"os"
	"runtime"

	"echobench/internal/child"
	"echobench/internal/reexec"
	_ "echobench/models/all"
)

// init locks the main goroutine to the main thread, so no other goroutine ever runs there. A
// goroutine that locks its thread and exits (the blocking model's connection threads, the engine's
// event loops) must end a thread of its own: the runtime parks the main thread for good instead of
// destroying it, which would leave a thread behind and stall the wait for it to go.
func init() { runtime.LockOSThread() }

func main() {
	// A model that re-executes the binary as its helper (the process model) lands here in the
	// helper.
	reexec.Run()
	os.Exit(child.Main(os.Args[1:], os.Stdout, os.Stderr))
}
