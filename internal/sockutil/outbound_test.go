package sockutil

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestOutboundKeepsOrder pushes bytes through an outbound in uneven pieces, draining it
// unevenly, and checks that they come out in order, that it holds no more chunks than its
// waiting bytes need, and that drained chunks go back to the pool.
func TestOutboundKeepsOrder(t *testing.T) {
	const limit = 100 << 10
	pool := NewPool(limit)
	o := pool.Outbound()
	var in, out []byte
	next := byte(0)
	for round := range 400 {
		add := make([]byte, (round*7919)%(limit-o.Len()+1))
		for i := range add {
			add[i] = next
			next++
		}
		in = append(in, add...)
		o.Append(add)
		if held, need := len(o.chunks)*ChunkSize, o.Len()+o.head+ChunkSize; held > need {
			t.Fatalf("round %d: %d chunks held for %d waiting bytes", round, len(o.chunks), o.Len())
		}
		for drain := (round * 104729) % (limit / 2); drain > 0 && o.Len() > 0; {
			p := o.Pending()
			k := min(len(p), drain, 1+round%20000) // partial sends too
			out = append(out, p[:k]...)
			o.Consume(k)
			drain -= k
		}
	}
	for o.Len() > 0 {
		p := o.Pending()
		out = append(out, p...)
		o.Consume(len(p))
	}
	if !bytes.Equal(in, out) {
		t.Fatalf("%d bytes in, %d out, or reordered", len(in), len(out))
	}
	if len(o.chunks) != 0 || len(pool.free) == 0 {
		t.Fatalf("after draining: %d chunks still held, %d in the pool", len(o.chunks), len(pool.free))
	}
}

// TestOutboundBound drives one outbound through random reads (of at most Room, as every model
// reads) and partial sends, and checks the bound rule: bytes come out in order, Len never
// exceeds the limit, the chunks held never exceed it by more than two (the sent head of the
// first, the unfilled tail of the last), and once the limit is reached Room stays 0 until half
// of it has drained.
func TestOutboundBound(t *testing.T) {
	for _, limit := range []int{1000, 100 << 10} {
		pool := NewPool(limit)
		o := pool.Outbound()
		rng := rand.New(rand.NewPCG(1, 2))
		var in, out bytes.Buffer
		next := byte(0)
		wasFull := false
		for step := range 20000 {
			if rng.IntN(2) == 0 {
				room := o.Room()
				if wasFull && o.Len() > limit/2 && room != 0 {
					t.Fatalf("limit %d, step %d: Room %d with %d queued after the limit was reached; want 0 until %d", limit, step, room, o.Len(), limit/2)
				}
				p := make([]byte, rng.IntN(room+1))
				for i := range p {
					p[i] = next
					next++
				}
				in.Write(p)
				o.Append(p)
			} else if o.Len() > 0 {
				p := o.Pending()
				n := rng.IntN(len(p) + 1)
				out.Write(p[:n])
				o.Consume(n)
			}
			if o.Len() >= limit {
				wasFull = true
			} else if o.Len() <= limit/2 {
				wasFull = false
			}
			if o.Len() > limit {
				t.Fatalf("limit %d, step %d: %d bytes queued", limit, step, o.Len())
			}
			held := 0
			for _, c := range o.chunks {
				held += cap(c)
			}
			if held > limit+2*pool.chunkSize {
				t.Fatalf("limit %d, step %d: %d bytes of chunks held for %d queued", limit, step, held, o.Len())
			}
		}
		for o.Len() > 0 {
			p := o.Pending()
			out.Write(p)
			o.Consume(len(p))
		}
		if !bytes.Equal(in.Bytes(), out.Bytes()) {
			t.Fatalf("limit %d: %d bytes in, %d out, or reordered", limit, in.Len(), out.Len())
		}
	}
}
