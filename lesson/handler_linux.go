package lesson

// Claims 11–12: UDP (no connection, no accept, empty datagrams, loss) and a handler's cost per
// message (an event loop stalls behind a blocking call; a thread per connection does not).

import (
	"fmt"
	"net"
	"strings"
	"time"

	"echobench/server"
)

func init() {
	register(&Experiment{
		ID:    11,
		Title: "UDP: no connection, no accept, empty datagrams, loss under overload",
		Claims: []Quote{
			{notes001, 758, "udp不需要连接,不需要指定半连接池的大小,accept等都是不需要的",
				"UDP needs no connection, no backlog size; accept and the like are not needed."},
			{notes001, 756, "UDP是可以发空的……而UDP是数据报协议,我们只要send一次,他就会组织一个数据报发送出去.",
				"UDP can send empty messages … UDP is a datagram protocol: every send makes one datagram."},
			{notes001, 1383, "如果客户端发送大量数据,服务端只能接收少量数据,剩余的数据,就会被丢弃掉.这就是udp的特点",
				"If the client sends a lot of data and the server can take only a little, the rest is discarded. That is how UDP is."},
		},
		Method: fmt.Sprintf("Against a model's UDP variant (echoserver -udp): an unconnected client socket sends an empty "+
			"datagram and waits for its empty echo; the server's own counters show datagrams read and no connection "+
			"accepted; then the client sends %d datagrams of %d B as fast as it can before reading any reply, and counts "+
			"the replies that come back.", udpBurst, udpSize),
		Rule: "not measurable yet if no model has a UDP variant in this build. Holds if the empty datagram is echoed, the " +
			"server accepted no connection, and some of the burst was lost; holds only when the sender outruns the receiver " +
			"if nothing of the burst was lost; does not hold otherwise.",
		Budget: 20 * time.Second,
		Run:    runUDP,
	})
	register(&Experiment{
		ID:    12,
		Title: "a handler that blocks stalls an event loop, not a thread per connection",
		Claims: []Quote{
			{notes002, 259, "非阻塞IO只能监测网络IO,不监测time.sleep()这种IO",
				"Non-blocking IO can only watch network IO, not IO like time.sleep()."},
			{notes001, 1518, "仅仅是因为服务端处理的太快将第一个客户端处理完成之后,直接处理第二个.如果我们在服务端的数据处理上加上delay,就能看到明显的时间延迟.",
				"Only because the server is so fast that it finishes the first client before the second; add a delay to the server's processing and the latency shows."},
		},
		Method: fmt.Sprintf("%d connections, closed-loop ping-pong, with -block %v (a sleep per message, standing for a "+
			"database call) against one epoll loop, a thread per connection (blocking) and a pool of %d threads (blocking "+
			"-pool %d); and with -work %v (CPU-bound work per message) against epoll and blocking. A loop that sleeps "+
			"serves nobody meanwhile: its ceiling is 1/block messages per second; threads sleep side by side.",
			handlerConns, handlerBlock, poolSize, poolSize, handlerWork),
		Rule: fmt.Sprintf("not measurable yet if a model runs faster than 1.5× its ceiling under -block (1/block for the one " +
			"loop, connections/block for threads, pool/block for the pool): the flag has no effect there yet. Holds if " +
			"epoll stays within 1.5× its ceiling, a thread per connection does at least 3× epoll's msgs/s, and the pool " +
			"stays within 1.5× its ceiling; does not hold otherwise."),
		Budget: 40 * time.Second,
		Run:    runHandlerCost,
	})
}

const (
	udpBurst     = 20000
	udpSize      = 1024
	udpDrain     = 500 * time.Millisecond
	handlerConns = 20
	handlerBlock = time.Millisecond
	handlerWork  = 200 * time.Microsecond
)

// udpModels lists the models `echoserver -list` marks as having a UDP variant.
func udpModels(t *Trial) ([]string, error) {
	out, _, err := t.Command("echoserver", "-list")
	if err != nil {
		return nil, fmt.Errorf("echoserver -list: %w", err)
	}
	var models []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "[-udp too]") {
			models = append(models, strings.Fields(line)[0])
		}
	}
	return models, nil
}

// udpFigures are claim 11's.
type udpFigures struct {
	Available                           bool
	EmptyEchoed                         bool
	Accepted, DatagramsIn, DatagramsOut uint64
	Sent, Replies, Dropped              uint64
}

func judgeUDP(f udpFigures) Verdict {
	if !f.Available {
		return Verdict{Outcome: NotMeasurable, Why: "no model has a UDP variant in this build yet (`echoserver -list` marks none with [-udp too])."}
	}
	lost := f.Sent - min(f.Replies, f.Sent)
	why := fmt.Sprintf("Empty datagram echoed: %v; connections accepted: %d, datagrams read: %d; of a burst of %d, %d replies came "+
		"back (%d lost, %.1f %%: %d on the way in, in the server's full socket buffer, %d on the way back, in the client's, "+
		"which read nothing during the burst; the server's own count of dropped replies %d).", f.EmptyEchoed, f.Accepted,
		f.DatagramsIn, f.Sent, f.Replies, lost, 100*ratio(float64(lost), float64(f.Sent)), f.Sent-min(f.DatagramsIn, f.Sent),
		f.DatagramsOut-min(f.Replies, f.DatagramsOut), f.Dropped)
	base := f.EmptyEchoed && f.Accepted == 0 && f.DatagramsIn > 0
	switch {
	case base && lost > 0:
		return Verdict{Outcome: Holds, Why: why}
	case base:
		return Verdict{Outcome: HoldsOnlyWhen, Condition: "the sender outruns the receiver: at this burst nothing was lost", Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runUDP(t *Trial) (Finding, error) {
	var f Finding
	models, err := udpModels(t)
	if err != nil {
		return f, err
	}
	fig := udpFigures{Available: len(models) > 0}
	if !fig.Available {
		f.Verdict = judgeUDP(fig)
		return f, nil
	}
	model := models[0]
	for _, m := range models {
		if m == "epoll" {
			model = m
		}
	}
	srv, err := t.StartServer(model, server.Config{UDP: true})
	if err != nil {
		return f, err
	}
	defer Stop(srv)
	t.Record("bin/echolesson -only 11   # the client: an unconnected UDP socket, an empty datagram, then a burst")
	dst, err := net.ResolveUDPAddr("udp", srv.Addr)
	if err != nil {
		return f, fmt.Errorf("server address %s: %w", srv.Addr, err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return f, fmt.Errorf("client socket: %w", err)
	}
	defer c.Close()
	if _, err := c.WriteToUDP(nil, dst); err != nil {
		return f, fmt.Errorf("sending an empty datagram: %w", err)
	}
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := c.ReadFromUDP(buf); err == nil && n == 0 {
		fig.EmptyEchoed = true
	}
	payload := make([]byte, udpSize)
	for range udpBurst {
		if _, err := c.WriteToUDP(payload, dst); err == nil {
			fig.Sent++
		}
	}
	c.SetReadDeadline(time.Now().Add(udpDrain))
	for {
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			break // the drain window ended: what has not come back by now is lost
		}
		fig.Replies++
		c.SetReadDeadline(time.Now().Add(udpDrain))
	}
	if st, err := srv.RequestStats(time.Second); err == nil {
		// The burst's alone: the empty datagram before it was one in and one out.
		fig.Accepted, fig.Dropped = st.Accepted, st.Dropped
		fig.DatagramsIn, fig.DatagramsOut = st.DatagramsIn-min(st.DatagramsIn, 1), st.DatagramsOut-min(st.DatagramsOut, 1)
	}
	f.Figures = []Figure{
		{Name: "models with a UDP variant", Value: float64(len(models)), Note: strings.Join(models, ", ") + "; measured here: " + model},
		{Name: "empty datagram echoed", Value: b2f(fig.EmptyEchoed), Unit: "bool"},
		{Name: "connections accepted by the server", Value: float64(fig.Accepted)},
		{Name: "datagrams of the burst the server read", Value: float64(fig.DatagramsIn)},
		{Name: "burst sent", Value: float64(fig.Sent), Unit: "datagrams"},
		{Name: "replies received", Value: float64(fig.Replies), Unit: "datagrams"},
		{Name: "datagrams of the burst the server echoed", Value: float64(fig.DatagramsOut)},
		{Name: "replies the server dropped (its bounded reply queue)", Value: float64(fig.Dropped)},
	}
	// The same with echobench's UDP mode, which follows every datagram to its echo or its
	// timeout: a window of one per flow, then a window deeper than the sockets hold.
	for _, w := range []int{1, udpDeepWindow} {
		name := fmt.Sprintf("udp-window-%d", w)
		r, err := t.Echobench(name, loadArgs(model, "-udp", "-c", "100", "-pipeline", fmt.Sprint(w))...)
		if err != nil {
			return f, err
		}
		if u := r.Summary.UDP; u != nil {
			f.Figures = append(f.Figures, Figure{Name: fmt.Sprintf("echobench -udp, 100 flows, window %d: msgs/s", w),
				Value: r.Summary.MsgsPerSec, Note: fmt.Sprintf("%d of %d datagrams lost, %.2f %%; p99 %.0f µs", u.Lost, u.Sent, u.LossPct, r.Summary.LatencyP99us)})
		}
	}
	f.Verdict = judgeUDP(fig)
	return f, nil
}

// udpDeepWindow is the datagrams in flight per flow of claim 11's overload run: 100 flows of 256
// 64-byte datagrams are far more than a loopback UDP socket's default receive buffer holds.
const udpDeepWindow = 256

// handlerFigures are claim 12's msgs/s.
type handlerFigures struct {
	EpollIdle, EpollBlock, ThreadBlock, PoolBlock float64
	EpollWork, ThreadWork                         float64
}

// ceilings under -block: one loop, a thread per connection, a pool.
func blockCeilings() (loop, threads, pool float64) {
	per := 1 / handlerBlock.Seconds()
	return per, per * handlerConns, per * poolSize
}

func judgeHandler(f handlerFigures) Verdict {
	loop, threads, pool := blockCeilings()
	var noEffect []string
	if f.EpollBlock > 1.5*loop {
		noEffect = append(noEffect, fmt.Sprintf("epoll %.0f msgs/s against a ceiling of %.0f", f.EpollBlock, loop))
	}
	if f.ThreadBlock > 1.5*threads {
		noEffect = append(noEffect, fmt.Sprintf("blocking %.0f against %.0f", f.ThreadBlock, threads))
	}
	if f.PoolBlock > 1.5*pool {
		noEffect = append(noEffect, fmt.Sprintf("blocking -pool %d %.0f against %.0f", poolSize, f.PoolBlock, pool))
	}
	if len(noEffect) > 0 {
		return Verdict{Outcome: NotMeasurable, Why: "-block has no effect in this build yet: " + strings.Join(noEffect, "; ") + "."}
	}
	why := fmt.Sprintf("Under -block %v: epoll %.0f msgs/s (ceiling %.0f; %.0f without the block), a thread per connection %.0f "+
		"(ceiling %.0f), a pool of %d %.0f (ceiling %.0f). Under -work %v, CPU-bound on one core: epoll %.0f, threads %.0f.",
		handlerBlock, f.EpollBlock, loop, f.EpollIdle, f.ThreadBlock, threads, poolSize, f.PoolBlock, pool, handlerWork, f.EpollWork, f.ThreadWork)
	if f.EpollBlock <= 1.5*loop && f.ThreadBlock >= 3*f.EpollBlock && f.PoolBlock <= 1.5*pool {
		return Verdict{Outcome: Holds, Why: why}
	}
	return Verdict{Outcome: DoesNotHold, Why: why}
}

func runHandlerCost(t *Trial) (Finding, error) {
	var f Finding
	var fig handlerFigures
	c := []string{"-c", fmt.Sprint(handlerConns)}
	block, work := []string{"-block", handlerBlock.String()}, []string{"-work", strings.ReplaceAll(handlerWork.String(), "µs", "us")}
	for _, row := range []struct {
		name, model string
		flags       []string
		into        *float64
	}{
		{"epoll", "epoll", []string{"-loops", "1"}, &fig.EpollIdle},
		{"epoll-block", "epoll", append([]string{"-loops", "1"}, block...), &fig.EpollBlock},
		{"blocking-block", "blocking", block, &fig.ThreadBlock},
		{"pool-block", "blocking", append([]string{"-pool", fmt.Sprint(poolSize)}, block...), &fig.PoolBlock},
		{"epoll-work", "epoll", append([]string{"-loops", "1"}, work...), &fig.EpollWork},
		{"blocking-work", "blocking", work, &fig.ThreadWork},
	} {
		r, err := t.Echobench(row.name, loadArgs(row.model, append(append([]string(nil), c...), row.flags...)...)...)
		if err != nil {
			return f, err
		}
		*row.into = r.Summary.MsgsPerSec
		echoed := 0
		if len(r.Runs) > 0 {
			echoed = r.Runs[0].ConnsEchoed
		}
		f.Figures = append(f.Figures, Figure{Name: row.name + ": msgs/s", Value: r.Summary.MsgsPerSec,
			Note: fmt.Sprintf("p99 %.0f µs, %d of %d connections served", r.Summary.LatencyP99us, echoed, handlerConns)})
	}
	f.Verdict = judgeHandler(fig)
	return f, nil
}
