package measure

import (
	"fmt"
	"os"
	"runtime"

	"echobench/internal/affinity"
	"echobench/report"
)

// Pinning is the CPUs chosen for each side; nil slices mean unpinned.
type Pinning struct {
	Server, Client []int
}

// PinApart pins the server and this process, the load generator, to separate CPUs: it checks the
// lists (kernel list format, "0,2-3") against the CPUs this process may use, pins this process
// to the client's (before the engine starts, so every engine thread inherits the mask), sets
// GOMAXPROCS to their count, and returns the CPUs for Spec.ServerCPUs and Spec.ClientCPUs. An
// external server (ownServer false) is not ours to move: its CPUs come back nil. On a machine
// where the two sides would share a CPU anyway, nothing is pinned and p.Reason says why.
func PinApart(serverList, clientList string, ownServer bool, p *report.Pinning) (Pinning, error) {
	online, err := affinity.Online()
	if err != nil {
		p.Reason = err.Error()
		return Pinning{}, nil
	}
	if len(online) < 2 {
		p.Reason = fmt.Sprintf("this machine lets echobench run on %d CPU; server and client would share it either way", len(online))
		return Pinning{}, nil
	}
	serverCPUs, err := affinity.ParseList(serverList)
	if err != nil {
		return Pinning{}, fmt.Errorf("-server-cpus: %w", err)
	}
	clientCPUs, err := affinity.ParseList(clientList)
	if err != nil {
		return Pinning{}, fmt.Errorf("-client-cpus: %w", err)
	}
	allowed := map[int]bool{}
	for _, c := range online {
		allowed[c] = true
	}
	for _, c := range append(append([]int(nil), serverCPUs...), clientCPUs...) {
		if !allowed[c] {
			return Pinning{}, fmt.Errorf("CPU %d is not one echobench may run on (allowed: %s); adjust -server-cpus/-client-cpus or pass -pin=false", c, affinity.Format(online))
		}
	}
	n, err := affinity.PinProcess(os.Getpid(), clientCPUs)
	if err != nil {
		return Pinning{}, fmt.Errorf("pin echobench: %w", err)
	}
	runtime.GOMAXPROCS(len(clientCPUs))
	p.Enabled = true
	p.ClientCPUs = affinity.Format(clientCPUs)
	p.ClientThreadsPinned = n
	if ownServer {
		p.ServerCPUs = affinity.Format(serverCPUs)
	} else {
		// An external server is not ours to move.
		p.Reason = "server not pinned: it was started outside echobench (-addr)"
		serverCPUs = nil
	}
	return Pinning{Server: serverCPUs, Client: clientCPUs}, nil
}

// RecordExternal notes where an external server (-addr -server-pid) runs: echobench does not move
// it, but whoever started it may have pinned it apart (make bench does), and the report should
// say so rather than call it unpinned. It records the server's CPUs when none of them is one of
// the client's and every thread of the process is on them.
func RecordExternal(pid int, client []int, p *report.Pinning) {
	cpus, err := affinity.Of(pid)
	if err != nil || len(client) == 0 {
		return
	}
	for _, c := range cpus {
		for _, k := range client {
			if c == k {
				return // shares a CPU with echobench: unpinned as far as the comparison goes
			}
		}
	}
	on, total, err := affinity.Check(pid, cpus)
	if err != nil || on != total {
		return
	}
	p.ServerCPUs = affinity.Format(cpus)
	p.ServerThreadsPinned, p.ServerThreads = on, total
	p.Reason = "server started outside echobench (-addr) and pinned by its starter"
}
