// Package child holds both ends of "run a model server as a child process and talk to it": the
// child side, which is cmd/echoserver (Main), and the parent side, which echobench, the
// benchmarks and modeltest use to start one (Start), pinned to its own CPUs, read its counters,
// and stop it again: SIGTERM, then SIGKILL after a grace period.
//
// The protocol (protocol.go is its one encoding): the child's first line on stdout is the bound
// address (host:port) and nothing else. SIGUSR1 makes it print a line "stats {json}", a Snapshot:
// the server's own counters (server.Stats) and what its process tree has cost so far (Usage: CPU,
// RSS, threads, processes, at a wall-clock instant); SIGINT or SIGTERM makes it stop accepting,
// close every connection, print a final stats line and exit 0. With -stats-addr (loopback only)
// GET /stats answers with the same JSON, for a reader that is not its parent: an echobench on
// another host through a port-forward, or a sidecar. The server's configuration travels as
// echoserver flags: -model, -addr, server.Config's own flags (Config.Args), and the fd limits a
// test of fd exhaustion runs it under (FDLimits: -nofile, -fdslots).
//
// Which binary the parent starts: an explicit path; else an echoserver next to the running
// executable; else the running executable itself, re-executed in the reexec role RoleServer,
// which this package registers. The last lets a single echobench binary (or a test binary)
// serve every model it links.
package child
