package epoll

const (
	// chunkSize is the unit in which outbound bytes are held. A connection that is behind holds
	// its waiting bytes rounded up to one chunk: 16 KiB keeps thousands of connections that are
	// each a little behind within tens of MiB, while draining a full 4 MiB outbound still takes
	// only 256 writes, each a 16 KiB copy in the kernel that outweighs its syscall.
	chunkSize = 16 << 10

	// spareChunks bounds the drained chunks a loop keeps for reuse (4 MiB): enough that
	// connections which often fall a write behind do not allocate each time, few enough that a
	// burst of stalled readers does not pin its peak memory for good. Chunks beyond it go back
	// to the garbage collector.
	spareChunks = 256
)

// chunkPool is a loop's store of drained chunks. It belongs to one loop and takes no lock.
type chunkPool struct {
	free [][]byte
}

func (p *chunkPool) get() []byte {
	if last := len(p.free) - 1; last >= 0 {
		b := p.free[last]
		p.free[last] = nil
		p.free = p.free[:last]
		return b
	}
	return make([]byte, 0, chunkSize)
}

func (p *chunkPool) put(b []byte) {
	if len(p.free) < spareChunks {
		p.free = append(p.free, b[:0])
	}
}

// outbound holds the bytes read from one client that the kernel would not take back yet: the
// tail of a partial write, and whatever the client sent after it. Bytes leave from the front and
// join at the back, so the echo keeps its order. They sit in fixed-size chunks rather than one
// growing buffer, so the memory a stalled reader holds is its waiting bytes rounded up to a
// chunk, never a doubled buffer plus the smaller ones it outgrew; and nothing is copied twice.
type outbound struct {
	chunks [][]byte // each filled up to its len; chunks[0][head:] is the next to write
	head   int
	n      int // bytes waiting
}

// Len returns how many bytes are waiting.
func (o *outbound) Len() int { return o.n }

// Pending returns the oldest waiting bytes: the unwritten part of the first chunk.
func (o *outbound) Pending() []byte {
	if o.n == 0 {
		return nil
	}
	return o.chunks[0][o.head:]
}

// Consume drops the first n bytes of Pending, which the kernel has taken, and returns a drained
// chunk to pool.
func (o *outbound) Consume(n int, pool *chunkPool) {
	o.head += n
	o.n -= n
	if o.head < len(o.chunks[0]) {
		return
	}
	pool.put(o.chunks[0])
	copy(o.chunks, o.chunks[1:])
	o.chunks[len(o.chunks)-1] = nil
	o.chunks = o.chunks[:len(o.chunks)-1]
	o.head = 0
}

// Append queues p behind the waiting bytes, taking chunks from pool as it needs them. The
// caller keeps Len within the outbound limit.
func (o *outbound) Append(p []byte, pool *chunkPool) {
	o.n += len(p)
	for len(p) > 0 {
		last := len(o.chunks) - 1
		if last < 0 || len(o.chunks[last]) == cap(o.chunks[last]) {
			o.chunks = append(o.chunks, pool.get())
			last++
		}
		c := o.chunks[last]
		k := min(len(p), cap(c)-len(c))
		o.chunks[last] = append(c, p[:k]...)
		p = p[k:]
	}
}

// Release returns every chunk to pool, for a connection that is closing.
func (o *outbound) Release(pool *chunkPool) {
	for i, c := range o.chunks {
		pool.put(c)
		o.chunks[i] = nil
	}
	o.chunks, o.head, o.n = o.chunks[:0], 0, 0
}
