package nonblocking

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestQueueBounded drives one connection's outbound queue through random enqueues and partial
// sends, as the loop does, and checks that bytes come out in order and that the queue's memory
// never exceeds the outbound limit.
func TestQueueBounded(t *testing.T) {
	const limit = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	var c conn
	var in, out bytes.Buffer
	next := byte(0)
	for step := 0; step < 20000; step++ {
		if rng.IntN(2) == 0 {
			// Enqueue no more than the room left, as read does.
			p := make([]byte, rng.IntN(limit-c.queued()+1))
			for i := range p {
				p[i] = next
				next++
			}
			in.Write(p)
			c.enqueue(p, limit)
		} else if c.queued() > 0 {
			n := rng.IntN(c.queued() + 1)
			out.Write(c.pending()[:n])
			c.consumed(n)
		}
		if c.queued() > limit || cap(c.queue) > limit {
			t.Fatalf("step %d: %d bytes queued in an array of %d, limit %d", step, c.queued(), cap(c.queue), limit)
		}
	}
	out.Write(c.pending())
	if !bytes.Equal(in.Bytes(), out.Bytes()) {
		t.Fatalf("queue reordered or lost bytes: %d in, %d out", in.Len(), out.Len())
	}
}
