package loadgen

// slotPhase is where in every interval the open-loop turns of connection (or flow) slot fall: slot
// i of n at i×interval/n. The run's sends are then evenly spaced, Rate a second, whatever order
// and however bunched the connects complete. A phase counted from each connect instead (as this
// engine once did) makes the connects' batches into bursts of sends at several times the rate,
// with holes between them, and a client that falls behind in every burst.
func slotPhase(slot, n int, interval int64) int64 {
	return interval * int64(slot) / int64(n)
}

// firstTurn is the first of the turns phase + k×interval (k ≥ 0, on the run's clock) that is not
// before now: when a connection that has just connected sends first.
func firstTurn(phase, interval, now int64) int64 {
	if now <= phase {
		return phase
	}
	return phase + (now-phase+interval-1)/interval*interval
}

// sendQueue is a worker's open-loop schedule: the connections that may send (their window has
// room) ordered by their next intended send time. A connection whose window is full leaves the
// queue and rejoins when an echo frees a slot, so a stalled server costs no timer wakeups.
//
// Its entries are a FIFO in send-time order, with a heap beside it for the few that arrive out of
// order. Every connection has the same interval, so in steady state the connection popped (the
// one due first) is pushed back one interval later, which is after every entry queued: each of
// those was pushed as a pop before it plus the interval. Such a push is an append, and a pop
// takes the FIFO's head: a message's pop and push touch two entries, where a heap of a thousand
// connections sifts through ten levels of entries, which the kernel's network path has pushed out
// of the cache since the last wake. A push before the FIFO's tail (a connect, a send turn that
// came with its echo unread, a late echo) goes to the heap, and a pop takes whichever of the two
// heads is due first.
//
// Removal is lazy: an entry names its connection and the connection's queueSeq when it was
// pushed, and a connection that leaves the queue or moves bumps its queueSeq, so that the entry
// left behind is stale and is dropped when it reaches a head. Stale entries are due within about
// one interval of their push, so the two lists hold at most a few times the connections.
type sendQueue struct {
	fifo       []queued // ring buffer, len a power of two; entries in nondecreasing send time
	head, size int
	heap       []queued // min-heap by send time: the pushes that came before the FIFO's tail
	live       int      // connections queued
}

// queued is one sendQueue entry: c, its send time when pushed, and its queueSeq then.
type queued struct {
	at  int64
	c   *conn
	seq uint32
}

func (e *queued) stale() bool { return !e.c.inQueue || e.c.queueSeq != e.seq }

func (q *sendQueue) len() int { return q.live }

// push queues c at its nextSend. c must not be queued.
func (q *sendQueue) push(c *conn) {
	c.inQueue = true
	c.queueSeq++
	c.queueKey = c.nextSend
	q.live++
	e := queued{c.nextSend, c, c.queueSeq}
	if q.size > 0 && e.at < q.fifo[(q.head+q.size-1)&(len(q.fifo)-1)].at {
		q.heap = append(q.heap, e)
		q.up(len(q.heap) - 1)
		return
	}
	if q.size == len(q.fifo) {
		q.grow()
	}
	q.fifo[(q.head+q.size)&(len(q.fifo)-1)] = e
	q.size++
}

// grow doubles the FIFO's ring, keeping its order.
func (q *sendQueue) grow() {
	ring := make([]queued, max(16, 2*len(q.fifo)))
	for i := range q.size {
		ring[i] = q.fifo[(q.head+i)&(len(q.fifo)-1)]
	}
	q.fifo, q.head = ring, 0
}

// update puts c in its place for its current nextSend: pushed if it is not queued, moved if it
// is. A queued connection whose nextSend changed without this would keep its old place, and
// others due before its new time would wait for it, or it would go out at its old one.
func (q *sendQueue) update(c *conn) {
	if c.inQueue {
		if c.queueKey == c.nextSend {
			return
		}
		q.remove(c)
	}
	q.push(c)
}

// remove takes c out of the queue if it is in it.
func (q *sendQueue) remove(c *conn) {
	if c.inQueue {
		c.inQueue = false
		c.queueSeq++
		q.live--
	}
}

// drop discards the stale entries at both heads, so that each head is a queued connection.
func (q *sendQueue) drop() {
	for q.size > 0 && q.fifo[q.head].stale() {
		q.popFIFO()
	}
	for len(q.heap) > 0 && q.heap[0].stale() {
		q.popHeap()
	}
}

// first returns the entry due first. The queue must not be empty.
func (q *sendQueue) first() *queued {
	q.drop()
	if q.size == 0 || (len(q.heap) > 0 && q.heap[0].at < q.fifo[q.head].at) {
		return &q.heap[0]
	}
	return &q.fifo[q.head]
}

// top returns the connection due first. The queue must not be empty.
func (q *sendQueue) top() *conn { return q.first().c }

// next is when the connection due first is due. The queue must not be empty.
func (q *sendQueue) next() int64 { return q.first().at }

// pop removes and returns the connection due first. The queue must not be empty.
func (q *sendQueue) pop() *conn {
	c := q.top()
	q.remove(c)
	return c
}

func (q *sendQueue) popFIFO() {
	q.fifo[q.head] = queued{} // no pointer kept to a connection
	q.head = (q.head + 1) & (len(q.fifo) - 1)
	q.size--
}

func (q *sendQueue) clear() {
	for i := range q.size {
		q.fifo[(q.head+i)&(len(q.fifo)-1)].c.inQueue = false
	}
	for _, e := range q.heap {
		e.c.inQueue = false
	}
	clear(q.fifo)
	q.head, q.size, q.heap, q.live = 0, 0, q.heap[:0], 0
}

// popHeap removes the heap's root.
func (q *sendQueue) popHeap() {
	last := len(q.heap) - 1
	q.heap[0] = q.heap[last]
	q.heap[last] = queued{}
	q.heap = q.heap[:last]
	if last > 0 {
		q.down(0)
	}
}

// up moves the heap entry at i towards the root while it is due before its parent.
func (q *sendQueue) up(i int) {
	e := q.heap[i]
	for i > 0 {
		parent := (i - 1) / 2
		if q.heap[parent].at <= e.at {
			break
		}
		q.heap[i] = q.heap[parent]
		i = parent
	}
	q.heap[i] = e
}

// down moves the heap entry at i towards the leaves while a child is due before it.
func (q *sendQueue) down(i int) {
	n := len(q.heap)
	e := q.heap[i]
	for {
		least := 2*i + 1
		if least >= n {
			break
		}
		if r := least + 1; r < n && q.heap[r].at < q.heap[least].at {
			least = r
		}
		if q.heap[least].at >= e.at {
			break
		}
		q.heap[i] = q.heap[least]
		i = least
	}
	q.heap[i] = e
}
