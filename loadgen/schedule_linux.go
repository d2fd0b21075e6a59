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
// Each entry keeps its connection's send time beside the pointer, so ordering the heap reads no
// connection: a wake's pop and push sift through ten levels for a thousand connections, and the
// connections' structs are the memory least likely to be in cache after the kernel's network
// path has run. The sifts move a hole and write each moved connection's queuePos once.
type sendQueue struct {
	items []queued
}

// queued is one sendQueue entry: c and c.nextSend as of its last push or update.
type queued struct {
	at int64
	c  *conn
}

func (q *sendQueue) len() int { return len(q.items) }

// top returns the connection due first. The queue must not be empty.
func (q *sendQueue) top() *conn { return q.items[0].c }

// next is when the connection due first is due. The queue must not be empty.
func (q *sendQueue) next() int64 { return q.items[0].at }

func (q *sendQueue) push(c *conn) {
	q.items = append(q.items, queued{c.nextSend, c})
	q.up(len(q.items) - 1)
}

// update puts c in its place for its current nextSend: pushed if it is not queued, moved if it
// is. A queued connection whose nextSend changed without this would keep its old place and key,
// and others due before its new time would wait for it, or it would go out at its old one.
func (q *sendQueue) update(c *conn) {
	i := c.queuePos
	if i < 0 {
		q.push(c)
		return
	}
	q.items[i].at = c.nextSend
	q.down(i)
	q.up(c.queuePos)
}

// pop removes and returns the connection due first.
func (q *sendQueue) pop() *conn {
	c := q.items[0].c
	q.remove(c)
	return c
}

// remove takes c out of the queue if it is in it.
func (q *sendQueue) remove(c *conn) {
	i := c.queuePos
	if i < 0 {
		return
	}
	last := len(q.items) - 1
	moved := q.items[last]
	q.items = q.items[:last]
	c.queuePos = -1
	if i < last {
		q.items[i] = moved
		moved.c.queuePos = i
		q.down(i)
		q.up(moved.c.queuePos)
	}
}

func (q *sendQueue) clear() {
	for _, e := range q.items {
		e.c.queuePos = -1
	}
	q.items = q.items[:0]
}

func (q *sendQueue) less(i, j int) bool { return q.items[i].at < q.items[j].at }

// up moves the entry at i towards the root while it is due before its parent.
func (q *sendQueue) up(i int) {
	e := q.items[i]
	for i > 0 {
		parent := (i - 1) / 2
		if q.items[parent].at <= e.at {
			break
		}
		q.items[i] = q.items[parent]
		q.items[i].c.queuePos = i
		i = parent
	}
	q.items[i] = e
	e.c.queuePos = i
}

// down moves the entry at i towards the leaves while a child is due before it.
func (q *sendQueue) down(i int) {
	n := len(q.items)
	e := q.items[i]
	for {
		least := 2*i + 1
		if least >= n {
			break
		}
		if r := least + 1; r < n && q.items[r].at < q.items[least].at {
			least = r
		}
		if q.items[least].at >= e.at {
			break
		}
		q.items[i] = q.items[least]
		q.items[i].c.queuePos = i
		i = least
	}
	q.items[i] = e
	e.c.queuePos = i
}
