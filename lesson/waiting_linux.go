package lesson

// Claims 1–3: where a model waits. Blocking IO sleeps in the call through both phases; busy
// polling never sleeps; a sleep in the busy loop is not the kernel's readiness wait.

import (
	"fmt"
	"math"
	"net"
	"time"

	"echobench/server"
)

func init() {
	register(&Experiment{
		ID:    1,
		Title: "blocking IO blocks in both phases: waiting for data and copying it",
		Claims: []Quote{
			{notes002, 171, "网路IO的两个阶段(copy data阶段 + wait data阶段),换言之,所有IO都围绕这两个阶段",
				"Network IO has two phases (copy data and wait data); in other words, all IO revolves around these two phases."},
			{notes002, 249, "wait data和copy data阶段一个都不能少,完完整整的等下来即为阻塞IO模型",
				"Neither the wait-data nor the copy-data phase can be skipped; waiting through both in full is the blocking IO model."},
			{notes002, 235, "send(只有copy data阶段)是IO操作,但有时可能感觉不到明显的阻塞……但如果send的数据量特别大,是有可能感受到阻塞的。",
				"send (which has only the copy-data phase) is an IO operation, but its blocking is often not felt …; if the data sent is very large, it can be felt."},
		},
		Method: fmt.Sprintf("Start the blocking model, open %d connections that each echo one message and then "+
			"stay idle, and read where every server thread is (`/proc/PID/task/*/syscall`: the syscall it "+
			"sleeps in) and the server's CPU over a second. Then one more connection sends %d MiB and reads "+
			"nothing back: the server thread's echo fills the socket buffers and its send cannot copy the "+
			"rest, so it must block in the send.", blockingIdleConns, blockingBigSend>>20),
		Rule: "holds if at least one thread per idle connection sleeps in a read-family call, the idle server " +
			"uses under 5 % of a core, and the thread of the connection that does not read is found asleep in a " +
			"send-family call; not measurable if the threads' syscalls cannot be read.",
		Budget: 20 * time.Second,
		Run:    runBlockingPhases,
	})
	register(&Experiment{
		ID:    2,
		Title: "non-blocking busy polling wastes CPU",
		Claims: []Quote{
			{notes002, 261, "非阻塞IO有可能大规模占用CPU做无用操作,所以不推荐使用非阻塞IO",
				"Non-blocking IO may occupy the CPU on a large scale doing useless work, so it is not recommended."},
		},
		Method: "Run the nonblocking model and epoll with 100 connections twice: idle (open loop, two 64 B " +
			"messages per connection per second) and loaded (closed-loop ping-pong), and compare the server's " +
			"CPU share and its CPU per echoed message.",
		Rule: "holds if idle nonblocking uses at least 80 % of a core and at least ten times epoll's idle share " +
			"(floor 1 %), and loaded it spends at least 1.3× epoll's CPU per message; holds only when the server " +
			"has idle time if the idle test holds and the loaded one does not; does not hold otherwise.",
		Budget: 30 * time.Second,
		Run:    runBusyPolling,
	})
	register(&Experiment{
		ID:    3,
		Title: "a sleep in the busy loop turns it into multiplexing",
		Claims: []Quote{
			{notes002, 381, "非阻塞模型不应该加time.sleep(); 加上time.sleep(0.05) 即把非阻塞IO模型变成IO多路复用模型",
				"The non-blocking model should not add time.sleep(); adding time.sleep(0.05) turns the non-blocking IO model into the IO multiplexing model."},
			{notes002, 497, "在之前修正版的非阻塞IO模型中加入time.sleep() 即将非阻塞IO模型转化成IO多路复用模型",
				"Adding time.sleep() to the corrected non-blocking model converts it into the IO multiplexing model."},
		},
		Method: fmt.Sprintf("A light open-loop load (%s connections, %s msgs/s in all) against the nonblocking model "+
			"with -poll-sleep 0, %v and %v (the notes' 0.05 s), against select and against epoll: the server's "+
			"CPU share and the median and p99 latency. Multiplexing sleeps in the kernel until a socket is ready; "+
			"a sleep waits its full length whatever arrives.", lightConns, lightRate, pollSleepShort, pollSleepNotes),
		Rule: fmt.Sprintf("not measurable yet if nonblocking with -poll-sleep %v keeps at least 80 %% of its CPU "+
			"without it (the flag has no effect in this build). Otherwise, with -poll-sleep %v: CPU like select's "+
			"(at most twice select's share, or select's + 10 points) and median latency within a quarter of the "+
			"sleep of select's: holds; CPU like select's but latency not: holds only when CPU is all one counts; "+
			"neither: does not hold.", pollSleepShort, pollSleepShort),
		Budget: 35 * time.Second,
		Run:    runPollSleep,
	})
}

const (
	blockingIdleConns = 50
	blockingBigSend   = 16 << 20 // far beyond loopback's socket buffers on both sides
	settle            = 300 * time.Millisecond
	lightConns        = "10"
	lightRate         = "1000"
	pollSleepShort    = time.Millisecond
	pollSleepNotes    = 50 * time.Millisecond
)

// phasesFigures are claim 1's measurements.
type phasesFigures struct {
	Conns, Threads, InRead, InAccept int
	IdleCPUPct                       float64
	SendBlocked                      bool
}

func judgePhases(f phasesFigures) Verdict {
	why := fmt.Sprintf("%d of %d threads asleep in a read for %d idle connections, %.2g %% of a core idle; "+
		"the non-reading connection's thread asleep in a send: %v.", f.InRead, f.Threads, f.Conns, f.IdleCPUPct, f.SendBlocked)
	if f.InRead >= f.Conns && f.IdleCPUPct < 5 && f.SendBlocked {
		return Verdict{Outcome: Holds, Why: "A thread per connection waits inside the call, costing a thread but no CPU: " + why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runBlockingPhases(t *Trial) (Finding, error) {
	var f Finding
	srv, err := t.StartServer("blocking", server.Config{})
	if err != nil {
		return f, err
	}
	defer Stop(srv)
	conns, err := dialAll(srv.Addr, blockingIdleConns)
	if err != nil {
		return f, err
	}
	defer closeAll(conns)
	for _, c := range conns {
		if !ping(c, 5*time.Second) {
			return f, fmt.Errorf("blocking model did not echo on an idle connection")
		}
	}
	t.Record(fmt.Sprintf("# %d connections echo once and stay idle; then, for the server's PID:", blockingIdleConns))
	t.Record("grep -h . /proc/$PID/task/*/syscall | cut -d' ' -f1 | sort | uniq -c   # syscall numbers (0 read, 44 sendto on x86-64)")
	time.Sleep(settle)
	where, err := threadsBySyscall(srv.PID)
	if err != nil {
		return Finding{Verdict: Verdict{Outcome: NotMeasurable, Why: err.Error()}}, nil
	}
	idle, err := cpuOver(srv.PID, time.Second)
	if err != nil {
		return f, err
	}
	threads := 0
	for _, n := range where {
		threads += n
	}
	sendBlocked, err := blockOneSend(srv.Addr, srv.PID)
	if err != nil {
		return f, err
	}
	fig := phasesFigures{Conns: blockingIdleConns, Threads: threads, InRead: where[inRead], InAccept: where[inAccept],
		IdleCPUPct: idle, SendBlocked: sendBlocked}
	f.Figures = []Figure{
		{Name: "idle connections", Value: float64(fig.Conns)},
		{Name: "server threads", Value: float64(fig.Threads)},
		{Name: "threads asleep in read/recvfrom/recvmsg (waiting for data)", Value: float64(fig.InRead)},
		{Name: "threads asleep in accept", Value: float64(fig.InAccept)},
		{Name: "threads elsewhere (the Go runtime's)", Value: float64(fig.Threads - fig.InRead - fig.InAccept)},
		{Name: "server CPU while idle", Value: fig.IdleCPUPct, Unit: "% of a core", Note: "over 1 s"},
		{Name: "a thread asleep in write/sendto/sendmsg while its client does not read", Value: b2f(fig.SendBlocked), Unit: "bool"},
	}
	f.Notes = []string{
		"The copy of a small read is too short to be caught by sampling: it happens inside the same read call the " +
			"thread slept in, after the wait. The send is where the copy phase blocks visibly, as the notes say.",
	}
	f.Verdict = judgePhases(fig)
	return f, nil
}

// blockOneSend connects, writes blockingBigSend bytes without reading the echo, and reports
// whether some server thread is then found asleep in a send within a few seconds.
func blockOneSend(addr string, pid int) (bool, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", addr, err)
	}
	defer c.Close()
	// The write blocks too once the server stops reading; closing the connection ends it.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		c.Write(make([]byte, blockingBigSend))
	}()
	defer func() { c.Close(); <-wrote }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		where, err := threadsBySyscall(pid)
		if err != nil {
			return false, err
		}
		if where[inSend] > 0 {
			return true, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// busyFigures are claim 2's measurements: CPU share idle, CPU per message loaded.
type busyFigures struct {
	NonblockingIdlePct, EpollIdlePct     float64
	NonblockingUsPerMsg, EpollUsPerMsg   float64
	NonblockingLoadPct, EpollLoadPct     float64
	NonblockingMsgsPerS, EpollMsgsPerSec float64
}

func judgeBusy(f busyFigures) Verdict {
	idleWaste := f.NonblockingIdlePct >= 80 && f.NonblockingIdlePct >= 10*math.Max(f.EpollIdlePct, 1)
	perMsg := ratio(f.NonblockingUsPerMsg, f.EpollUsPerMsg)
	loadWaste := perMsg >= 1.3
	why := fmt.Sprintf("Idle: nonblocking %.0f %% of a core, epoll %.2g %%. Loaded: nonblocking %.3g µs of CPU per message, "+
		"epoll %.3g µs (%.2f×), at %.0f %% and %.0f %% of a core.", f.NonblockingIdlePct, f.EpollIdlePct,
		f.NonblockingUsPerMsg, f.EpollUsPerMsg, perMsg, f.NonblockingLoadPct, f.EpollLoadPct)
	switch {
	case idleWaste && loadWaste:
		return Verdict{Outcome: Holds, Why: why}
	case idleWaste:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "the server has idle time: under full load every loop is busy anyway, and polling wastes little",
			Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runBusyPolling(t *Trial) (Finding, error) {
	var f Finding
	get := map[string]float64{}
	for _, cell := range []struct{ name, model string }{
		{"idle-nonblocking", "nonblocking"}, {"idle-epoll", "epoll"},
	} {
		r, err := t.Echobench(cell.name, loadArgs(cell.model, "-c", "100", "-rate", idleRate(100))...)
		if err != nil {
			return f, err
		}
		get[cell.name] = r.Summary.ServerCPUPct
	}
	load := map[string]float64{}
	for _, model := range []string{"nonblocking", "epoll"} {
		r, err := t.Echobench("load-"+model, loadArgs(model, "-c", "100")...)
		if err != nil {
			return f, err
		}
		load[model+"/us"] = usPerMsg(r.Summary)
		load[model+"/pct"] = r.Summary.ServerCPUPct
		load[model+"/rate"] = r.Summary.MsgsPerSec
	}
	fig := busyFigures{
		NonblockingIdlePct: get["idle-nonblocking"], EpollIdlePct: get["idle-epoll"],
		NonblockingUsPerMsg: load["nonblocking/us"], EpollUsPerMsg: load["epoll/us"],
		NonblockingLoadPct: load["nonblocking/pct"], EpollLoadPct: load["epoll/pct"],
		NonblockingMsgsPerS: load["nonblocking/rate"], EpollMsgsPerSec: load["epoll/rate"],
	}
	f.Figures = []Figure{
		{Name: "idle: nonblocking server CPU", Value: fig.NonblockingIdlePct, Unit: "% of a core"},
		{Name: "idle: epoll server CPU", Value: fig.EpollIdlePct, Unit: "% of a core"},
		{Name: "loaded: nonblocking msgs/s", Value: fig.NonblockingMsgsPerS},
		{Name: "loaded: epoll msgs/s", Value: fig.EpollMsgsPerSec},
		{Name: "loaded: nonblocking server CPU per message", Value: fig.NonblockingUsPerMsg, Unit: "µs"},
		{Name: "loaded: epoll server CPU per message", Value: fig.EpollUsPerMsg, Unit: "µs"},
	}
	f.Verdict = judgeBusy(fig)
	return f, nil
}

// sleepRow is one row of claim 3: a server's CPU and latency under the light load.
type sleepRow struct {
	Name         string
	CPUPct       float64
	P50us, P99us float64
}

// sleepFigures are claim 3's rows: nonblocking without and with the short sleep, and select.
type sleepFigures struct {
	Busy, Slept, Select sleepRow
	Sleep               time.Duration
}

func judgeSleep(f sleepFigures) Verdict {
	if f.Slept.CPUPct >= 0.8*f.Busy.CPUPct {
		return Verdict{Outcome: NotMeasurable, Why: fmt.Sprintf("nonblocking with -poll-sleep %v used %.0f %% of a core, "+
			"%.0f %% without: the flag has no effect in this build yet.", f.Sleep, f.Slept.CPUPct, f.Busy.CPUPct)}
	}
	cpuLike := f.Slept.CPUPct <= math.Max(2*f.Select.CPUPct, f.Select.CPUPct+10)
	latLike := f.Slept.P50us-f.Select.P50us <= float64(f.Sleep.Microseconds())/4
	why := fmt.Sprintf("With -poll-sleep %v the nonblocking model uses %.2g %% of a core (%.0f %% without; select %.2g %%) "+
		"and its median latency is %.0f µs (select %.0f µs, p99 %.0f against %.0f µs).", f.Sleep, f.Slept.CPUPct, f.Busy.CPUPct,
		f.Select.CPUPct, f.Slept.P50us, f.Select.P50us, f.Slept.P99us, f.Select.P99us)
	switch {
	case cpuLike && latLike:
		return Verdict{Outcome: Holds, Why: why}
	case cpuLike:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "CPU is all one counts: the sleep frees the core as select does, " +
			"but every message that arrives during it waits for it to end, where select wakes when a socket is ready",
			Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runPollSleep(t *Trial) (Finding, error) {
	var f Finding
	light := []string{"-c", lightConns, "-rate", lightRate}
	rows := []struct {
		name, model string
		flags       []string
	}{
		{"nonblocking", "nonblocking", nil},
		{"nonblocking-sleep-1ms", "nonblocking", []string{"-poll-sleep", pollSleepShort.String()}},
		{"nonblocking-sleep-50ms", "nonblocking", []string{"-poll-sleep", pollSleepNotes.String()}},
		{"select", "select", nil},
		{"epoll", "epoll", nil},
	}
	got := map[string]sleepRow{}
	for _, row := range rows {
		r, err := t.Echobench(row.name, loadArgs(row.model, append(append([]string(nil), light...), row.flags...)...)...)
		if err != nil {
			return f, err
		}
		s := r.Summary
		got[row.name] = sleepRow{Name: row.name, CPUPct: s.ServerCPUPct, P50us: s.LatencyP50us, P99us: s.LatencyP99us}
		f.Figures = append(f.Figures,
			Figure{Name: row.name + ": server CPU", Value: s.ServerCPUPct, Unit: "% of a core"},
			Figure{Name: row.name + ": latency p50 / p99", Value: s.LatencyP50us, Unit: "µs", Note: fmt.Sprintf("p99 %.0f µs", s.LatencyP99us)})
	}
	f.Notes = []string{"Open-loop latency is measured from each message's intended send time, so a sleeping server cannot hide its sleep."}
	f.Verdict = judgeSleep(sleepFigures{Busy: got["nonblocking"], Slept: got["nonblocking-sleep-1ms"], Select: got["select"], Sleep: pollSleepShort})
	return f, nil
}
