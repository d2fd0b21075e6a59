//go:build !linux

package server

// echobench is Linux-only, and this file is the one place that says so: the models are epoll,
// io_uring, select and raw-fd servers, the load engine is epoll event loops (epoll_pwait2), and the
// harness reads /proc and pins CPUs with sched_setaffinity. Every command, the models and the
// harness import server, so on another system their build stops here with the undefined name
// below as its message. The few leaf packages that do not import it (loadgen, internal/...) fail
// with undefined Linux-only names instead; they have no other-platform stubs to keep in step.
var _ = echobench_runs_on_Linux_only_see_README
