// Command echobench is echobench's load generator: it drives an echo server over loopback with
// many connections, checks every echoed byte, and reports throughput, latency percentiles, and
// what the server's process tree and echobench itself cost in CPU, memory, threads and context
// switches.
//
//	echobench -model epoll -c 1000 -d 10s -o result.json   # start the server, measure, stop it
//	echobench -addr 127.0.0.1:7000 -c 100 -rate 50000      # any echo server, open loop
//	echobench -model epoll -c 1000 -knee 1ms               # the highest rate whose p99 stays ≤ 1 ms
//
// With -model, echobench starts the server as a child process (an echoserver binary next to it,
// or itself re-executed), pins server and client to separate CPUs, and kills the child at the
// end. The measurement model (closed and open loop, coordinated omission) is package loadgen's;
// the JSON layout is package report's. In open loop, a latency percentile that echobench's own
// schedule lag is a material share of is flagged METER-LIMITED, by the rule of report.MeterShare.
package main

import (
	"os"
	"runtime"

	_ "echobench/internal/child" // registers the echoserver role, for a run without an echoserver binary
	"echobench/internal/reexec"
	_ "echobench/models/all"
)

// init locks the main goroutine to the main thread, as cmd/echoserver does and for its reason:
// echobench re-executed is the server, and its engine's event loops lock threads too.
func init() { runtime.LockOSThread() }

func main() {
	// Without an echoserver binary beside it, echobench re-executes itself as the server, and a
	// model that re-executes the binary as its helper (the process model) lands here in the
	// helper: reexec.Run runs the role either was started for.
	reexec.Run()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
