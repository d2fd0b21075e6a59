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
		w.conns[i] = conn{index: i, slot: i, fd: -1, state: stateOpen, inflight: make([]message, 3)}
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
	// The rest must come out in time order.
	for want := []*conn{b, c, a}; len(want) > 0; want = want[1:] {
		if got := w.sendQueue.pop(); got != want[0] {
			t.Fatalf("popped conn %d (due %d), want conn %d (due %d)", got.index, got.nextSend, want[0].index, want[0].nextSend)
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
		w.conns[i] = conn{index: i, slot: i, fd: -1, state: stateOpen, inflight: make([]message, 1)}
	}
	w.nextConnect = len(w.conns)
	a, b := &w.conns[0], &w.conns[1]
	a.nextSend, b.nextSend = 100, 100

	w.fill(a, 100) // sends a's message: its window is full, its next turn at 10_000_100
	if a.count != 1 || !a.inQueue {
		t.Fatalf("after its send a has %d in flight and queued %v; want 1 and queued", a.count, a.inQueue)
	}
	b.count = 1 // b's message went out long ago and its next send is overdue
	w.fill(b, 100)
	if b.inQueue {
		t.Fatalf("b, full and overdue, stayed in the send queue")
	}

	// a's turn comes and the harvest found no echo: a leaves the queue, nothing is sent.
	w.serviceTimers(a.nextSend)
	if a.inQueue || a.count != 1 || w.sendQueue.len() != 0 {
		t.Fatalf("at its turn with its echo still out a is queued %v, %d in flight; queue length %d",
			a.inQueue, a.count, w.sendQueue.len())
	}

	sh.harvest = false // waking on echoes, a full window leaves the queue at once
	c := &conn{index: 2, fd: -1, state: stateOpen, inflight: make([]message, 1), nextSend: 100}
	w.fill(c, 100)
	if c.count != 1 || c.inQueue {
		t.Fatalf("waking on echoes, a full window stayed queued; want out of the queue")
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

// TestSendQueueOrder drives the send queue with random pushes, moves, removals and pops, some in
// the FIFO's steady pattern (a pop pushed back one interval later) and some anywhere, and checks
// it against a plain list of what is queued: its length, that the time it says is next is the
// earliest queued, and that a pop returns a connection queued at that time and takes it out.
func TestSendQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const interval = 1000
	conns := make([]conn, 200)
	for i := range conns {
		conns[i] = conn{index: i}
	}
	var q sendQueue
	queued := map[*conn]int64{} // the model: each queued connection and its send time
	earliest := func() int64 {
		least := int64(-1)
		for _, at := range queued {
			if least < 0 || at < least {
				least = at
			}
		}
		return least
	}
	var now int64
	for step := range 50000 {
		c := &conns[rng.IntN(len(conns))]
		switch op := rng.IntN(20); {
		case op < 4:
			c.nextSend = now + rng.Int64N(interval) // ties on purpose
			q.update(c)
			queued[c] = c.nextSend
		case op < 6:
			q.update(c) // its time unchanged: a no-op if it is queued
			queued[c] = c.nextSend
		case op < 8:
			q.remove(c)
			delete(queued, c)
		case q.len() > 0:
			at := q.next()
			if want := earliest(); at != want {
				t.Fatalf("step %d: next says %d, the earliest queued is %d", step, at, want)
			}
			got := q.pop()
			if was, ok := queued[got]; !ok || was != at || got.inQueue {
				t.Fatalf("step %d: popped conn %d (queued %v at %d, still in %v); next said %d", step, got.index, ok, was, got.inQueue, at)
			}
			delete(queued, got)
			now = at
			if op < 17 {
				got.nextSend = at + interval // the steady pattern: back one interval later
				q.push(got)
				queued[got] = got.nextSend
			}
		}
		if q.len() != len(queued) {
			t.Fatalf("step %d: length %d, %d queued", step, q.len(), len(queued))
		}
		for i := range conns {
			if _, ok := queued[&conns[i]]; ok != conns[i].inQueue {
				t.Fatalf("step %d: conn %d thinks it is queued %v, the model says %v", step, i, conns[i].inQueue, ok)
			}
		}
		if n := q.size + len(q.heap); n > 8*len(conns) {
			t.Fatalf("step %d: %d entries held for %d connections: stale ones are not dropped", step, n, len(conns))
		}
	}
	q.clear()
	for i := range conns {
		if conns[i].inQueue {
			t.Fatalf("after clear conn %d is queued", i)
		}
	}
	if q.len() != 0 || q.size != 0 || len(q.heap) != 0 {
		t.Fatalf("after clear the queue holds %d (%d + %d entries)", q.len(), q.size, len(q.heap))
	}
}

// TestSendQueueSteadyStateIsFIFO checks what the FIFO is for: evenly spaced connections, each
// pushed back one interval after its pop, are appended and popped in order, and the heap is never
// used.
func TestSendQueueSteadyStateIsFIFO(t *testing.T) {
	const n, interval = 100, int64(1000)
	conns := make([]conn, n)
	var q sendQueue
	for i := range conns {
		conns[i] = conn{index: i, nextSend: slotPhase(i, n, interval)}
		q.push(&conns[i])
	}
	for k := range 10 * n {
		c := q.pop()
		if want := &conns[k%n]; c != want {
			t.Fatalf("pop %d took conn %d, want %d", k, c.index, want.index)
		}
		c.nextSend += interval
		q.push(c)
		if len(q.heap) != 0 {
			t.Fatalf("pop %d: the steady pattern put %d entries in the heap", k, len(q.heap))
		}
	}
}
