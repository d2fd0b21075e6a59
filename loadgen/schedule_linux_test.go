package loadgen

import (
	"math/rand/v2"
	"testing"
)

// TestFillKeepsSendQueueOrder covers an open-loop connection that sits in the send queue (its
// window has room) and gets an echo after its send came due: fill sends what is due and moves
// its nextSend on, and the queue must then put the next connection due at its top. Before the
// fix it kept the filled connection at the top, so a connection due at 200 waited until 10 ms
// past 100.
func TestFillKeepsSendQueueOrder(t *testing.T) {
	sh := &shared{cfg: Config{Conns: 3, Rate: 300, Pipeline: 3, Sizes: []int{64}}, interval: 10_000_000}
	w := &worker{sh: sh}
	w.conns = make([]conn, 3)
	for i := range w.conns {
		w.conns[i] = conn{index: i, slot: i, fd: -1, queuePos: -1, state: stateOpen, inflight: make([]message, 3)}
	}
	a, b, c := &w.conns[0], &w.conns[1], &w.conns[2]
	a.nextSend, b.nextSend, c.nextSend = 100, 200, 300
	for _, x := range []*conn{a, b, c} {
		w.sendQueue.push(x)
	}
	a.count = 1 // one message in flight and room for more: a stays queued after its fill

	// At 250 the sends of a and b are both due; a's echo arrives first.
	w.fill(a, 250)
	if a.nextSend <= 250 {
		t.Fatalf("fill left a's next send at %d, not after now (250)", a.nextSend)
	}
	if top := w.sendQueue.top(); top != b {
		t.Fatalf("send queue top is conn %d (due %d) while conn 1 is due at %d", top.index, top.nextSend, b.nextSend)
	}
	// The whole queue must still be a heap.
	for i := 1; i < w.sendQueue.len(); i++ {
		if w.sendQueue.less(i, (i-1)/2) {
			t.Fatalf("send queue out of heap order at %d", i)
		}
	}
}

// TestHarvestKeepsFullWindowQueued covers harvest mode's send queue: a connection whose one
// message is in flight keeps its place until its next turn, because its echo may be in and unread
// until the wake that turn brings; an overdue one leaves (its place would make the loop spin while
// the server is late), and so does a full one whose turn comes with the echo still out.
func TestHarvestKeepsFullWindowQueued(t *testing.T) {
	sh := &shared{cfg: Config{Conns: 2, Rate: 200, Pipeline: 1, Sizes: []int{64}}, interval: 10_000_000, harvest: true}
	w := &worker{sh: sh, rampReported: true}
	w.conns = make([]conn, 2)
	for i := range w.conns {
		w.conns[i] = conn{index: i, slot: i, fd: -1, queuePos: -1, state: stateOpen, inflight: make([]message, 1)}
	}
	w.nextConnect = len(w.conns)
	a, b := &w.conns[0], &w.conns[1]
	a.nextSend, b.nextSend = 100, 100

	w.fill(a, 100) // sends a's message: its window is full, its next turn at 10_000_100
	if a.count != 1 || a.queuePos < 0 {
		t.Fatalf("after its send a has %d in flight and queue position %d; want 1 and queued", a.count, a.queuePos)
	}
	b.count = 1 // b's message went out long ago and its next send is overdue
	w.fill(b, 100)
	if b.queuePos >= 0 {
		t.Fatalf("b, full and overdue, stayed in the send queue")
	}

	// a's turn comes and the harvest found no echo: a leaves the queue, nothing is sent.
	w.serviceTimers(a.nextSend)
	if a.queuePos >= 0 || a.count != 1 || w.sendQueue.len() != 0 {
		t.Fatalf("at its turn with its echo still out a has queue position %d, %d in flight; queue length %d",
			a.queuePos, a.count, w.sendQueue.len())
	}

	sh.harvest = false // waking on echoes, a full window leaves the queue at once
	c := &conn{index: 2, fd: -1, queuePos: -1, state: stateOpen, inflight: make([]message, 1), nextSend: 100}
	w.fill(c, 100)
	if c.count != 1 || c.queuePos >= 0 {
		t.Fatalf("waking on echoes, a full window has queue position %d; want out of the queue", c.queuePos)
	}
}

// TestTurnsAreEvenlySpaced checks the open-loop rule: whenever each connection connects, the
// run's sends fall 1/Rate apart, each connection's first turn is its first at or after its
// connect, and a connect right on a turn sends then.
func TestTurnsAreEvenlySpaced(t *testing.T) {
	const conns, interval = 8, int64(800) // Rate = 8 per 800 ns: one send every 100 ns
	connected := []int64{0, 5, 5, 5, 5, 620, 1999, 300}
	var turns []int64
	for slot, at := range connected {
		phase := slotPhase(slot, conns, interval)
		first := firstTurn(phase, interval, at)
		if first < at || first-at >= interval || (first-phase)%interval != 0 {
			t.Fatalf("slot %d connected at %d: first turn %d, want its first turn (%d + k×%d) not before that", slot, at, first, phase, interval)
		}
		for k := first; k < 4000; k += interval {
			turns = append(turns, k)
		}
	}
	// From 2,000 on, every slot has taken its first turn: one send every 100 ns, no two together.
	seen := map[int64]bool{}
	for _, x := range turns {
		if x >= 2000 {
			if x%100 != 0 || seen[x] {
				t.Fatalf("turn at %d: want one send at each multiple of 100 ns", x)
			}
			seen[x] = true
		}
	}
	if len(seen) != 20 {
		t.Fatalf("%d turns in [2000, 4000), want 20", len(seen))
	}
	if got := firstTurn(300, interval, 300); got != 300 {
		t.Fatalf("a connect right on its turn (300) sends at %d, want 300", got)
	}
}

// TestSendQueueOrder drives the send queue with random pushes, moves, removals and pops and
// checks after each that it is a heap on the connections' send times, that every connection
// knows its place, and that pops come in time order.
func TestSendQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	conns := make([]conn, 200)
	for i := range conns {
		conns[i] = conn{index: i, queuePos: -1}
	}
	var q sendQueue
	check := func(step int) {
		t.Helper()
		for i, e := range q.items {
			if e.c.queuePos != i {
				t.Fatalf("step %d: conn %d at %d thinks it is at %d", step, e.c.index, i, e.c.queuePos)
			}
			if e.at != e.c.nextSend {
				t.Fatalf("step %d: conn %d queued at %d, due %d", step, e.c.index, e.at, e.c.nextSend)
			}
			if i > 0 && q.less(i, (i-1)/2) {
				t.Fatalf("step %d: entry %d (%d) before its parent (%d)", step, i, e.at, q.items[(i-1)/2].at)
			}
		}
		for i := range conns {
			if p := conns[i].queuePos; p >= len(q.items) || (p >= 0 && q.items[p].c != &conns[i]) {
				t.Fatalf("step %d: conn %d has a stale place %d", step, i, p)
			}
		}
	}
	for step := range 20000 {
		c := &conns[rng.IntN(len(conns))]
		switch op := rng.IntN(10); {
		case op < 5:
			c.nextSend = rng.Int64N(1000) // ties on purpose
			q.update(c)
		case op < 7:
			q.remove(c)
		case q.len() > 0:
			at := q.next()
			got := q.pop()
			if got.nextSend != at || got.queuePos != -1 {
				t.Fatalf("step %d: popped conn %d due %d (place %d); the top said %d", step, got.index, got.nextSend, got.queuePos, at)
			}
			for _, e := range q.items {
				if e.at < at {
					t.Fatalf("step %d: popped %d while %d was queued", step, at, e.at)
				}
			}
		}
		check(step)
	}
	q.clear()
	for i := range conns {
		if conns[i].queuePos != -1 {
			t.Fatalf("after clear conn %d is at %d", i, conns[i].queuePos)
		}
	}
}
