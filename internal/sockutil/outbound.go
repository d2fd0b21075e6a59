package sockutil

const (
	// ChunkSize is the unit in which outbound bytes are held. A connection that is behind holds
	// its waiting bytes rounded up to one chunk: 16 KiB keeps thousands of connections that are
	// each a little behind within tens of MiB, while draining a full 4 MiB outbound still takes
	// only 256 sends, each a 16 KiB copy in the kernel that outweighs its syscall.
	ChunkSize = 16 << 10

	// spareChunks bounds the drained chunks a pool keeps for reuse (4 MiB): enough that
	// connections which often fall a send behind do not allocate each time, few enough that a
	// burst of stalled readers does not pin its peak memory for good. Chunks beyond it go back
	// to the garbage collector.
	spareChunks = 256
)

// A Pool is one event loop's store of drained chunks and the outbound bound of its connections.
// It belongs to one loop and takes no lock.
//
// The bound is the one rule every model applies to a client that does not read its echoes: the
// server holds at most limit bytes for it. A read takes no more than the room left under the
// limit (Outbound.Room); once the limit is reached the connection is not read again until half of
// it has drained, so a stalled reader costs two changes of interest per half-limit of progress
// rather than two per send. Meanwhile the client's further bytes stay in the kernel, its receive
// window fills, and TCP flow control stops the client: backpressure, for that client alone.
type Pool struct {
	limit     int
	resumeAt  int
	chunkSize int
	free      [][]byte
}

// NewPool returns a pool for connections whose outbound is bounded by limit bytes (a model's
// Config.Outbound()).
func NewPool(limit int) *Pool {
	limit = max(limit, 1)
	return &Pool{limit: limit, resumeAt: limit / 2, chunkSize: min(ChunkSize, limit)}
}

// Limit is the outbound bound of the pool's connections.
func (p *Pool) Limit() int { return p.limit }

// Outbound returns an empty outbound queue that takes its chunks from p.
func (p *Pool) Outbound() Outbound { return Outbound{pool: p} }

func (p *Pool) get() []byte {
	if last := len(p.free) - 1; last >= 0 {
		b := p.free[last]
		p.free[last] = nil
		p.free = p.free[:last]
		return b
	}
	return make([]byte, 0, p.chunkSize)
}

func (p *Pool) put(b []byte) {
	if len(p.free) < spareChunks {
		p.free = append(p.free, b[:0])
	}
}

// Outbound holds the bytes read from one client that the kernel would not take back yet: the
// tail of a partial send, and whatever the client sent after it. Bytes leave from the front and
// join at the back, so the echo keeps its order. They sit in fixed-size chunks rather than one
// growing buffer, so the memory a stalled reader holds is its waiting bytes rounded up to a
// chunk, never a doubled buffer plus the smaller ones it outgrew; nothing is copied twice, and
// bytes once queued never move, so a send in flight in the kernel may read them in place.
type Outbound struct {
	pool   *Pool
	chunks [][]byte // each filled up to its len; chunks[0][head:] is the next to send
	head   int
	n      int  // bytes waiting
	held   bool // the limit was reached and has not drained to the pool's resumeAt yet
}

// Len returns how many bytes are waiting.
func (o *Outbound) Len() int { return o.n }

// Room returns how many bytes a read for this connection may take now: what is left under the
// limit, or 0 while reading is held off (see Pool).
func (o *Outbound) Room() int {
	if o.held {
		return 0
	}
	return o.pool.limit - o.n
}

// Pending returns the oldest waiting bytes: the unsent part of the first chunk.
func (o *Outbound) Pending() []byte {
	if o.n == 0 {
		return nil
	}
	return o.chunks[0][o.head:]
}

// Consume drops the first n bytes of Pending, which the kernel has taken, and returns a drained
// chunk to the pool.
func (o *Outbound) Consume(n int) {
	o.head += n
	o.n -= n
	if o.held && o.n <= o.pool.resumeAt {
		o.held = false
	}
	if o.head < len(o.chunks[0]) {
		return
	}
	o.pool.put(o.chunks[0])
	copy(o.chunks, o.chunks[1:])
	o.chunks[len(o.chunks)-1] = nil
	o.chunks = o.chunks[:len(o.chunks)-1]
	o.head = 0
}

// Append queues p behind the waiting bytes, taking chunks from the pool as it needs them. The
// caller reads no more than Room, so Len stays within the limit.
func (o *Outbound) Append(p []byte) {
	o.n += len(p)
	if o.n >= o.pool.limit {
		o.held = true
	}
	for len(p) > 0 {
		last := len(o.chunks) - 1
		if last < 0 || len(o.chunks[last]) == cap(o.chunks[last]) {
			o.chunks = append(o.chunks, o.pool.get())
			last++
		}
		c := o.chunks[last]
		k := min(len(p), cap(c)-len(c))
		o.chunks[last] = append(c, p[:k]...)
		p = p[k:]
	}
}

// Release returns every chunk to the pool, for a connection that is closing.
func (o *Outbound) Release() {
	for i, c := range o.chunks {
		o.pool.put(c)
		o.chunks[i] = nil
	}
	o.chunks, o.head, o.n, o.held = o.chunks[:0], 0, 0, false
}
