package loadgen

import "testing"

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
