package epoll

import (
	"bytes"
	"testing"
)

// TestOutboundKeepsOrder pushes bytes through an outbound in uneven pieces, draining it
// unevenly, and checks that they come out in order, that it holds no more chunks than its
// waiting bytes need, and that drained chunks go back to the pool.
func TestOutboundKeepsOrder(t *testing.T) {
	const limit = 100 << 10
	var pool chunkPool
	var o outbound
	var in, out []byte
	next := byte(0)
	for round := range 400 {
		add := make([]byte, (round*7919)%(limit-o.Len()+1))
		for i := range add {
			add[i] = next
			next++
		}
		in = append(in, add...)
		o.Append(add, &pool)
		if held, need := len(o.chunks)*chunkSize, o.Len()+o.head+chunkSize; held > need {
			t.Fatalf("round %d: %d chunks held for %d waiting bytes", round, len(o.chunks), o.Len())
		}
		for drain := (round * 104729) % (limit / 2); drain > 0 && o.Len() > 0; {
			p := o.Pending()
			k := min(len(p), drain, 1+round%20000) // partial writes too
			out = append(out, p[:k]...)
			o.Consume(k, &pool)
			drain -= k
		}
	}
	for o.Len() > 0 {
		p := o.Pending()
		out = append(out, p...)
		o.Consume(len(p), &pool)
	}
	if !bytes.Equal(in, out) {
		t.Fatalf("%d bytes in, %d out, or reordered", len(in), len(out))
	}
	if len(o.chunks) != 0 || len(pool.free) == 0 {
		t.Fatalf("after draining: %d chunks still held, %d in the pool", len(o.chunks), len(pool.free))
	}
}
