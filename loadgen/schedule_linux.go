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
type sendQueue struct {
	items []*conn
}

func (q *sendQueue) len() int { return len(q.items) }

// top returns the connection due first. The queue must not be empty.
func (q *sendQueue) top() *conn { return q.items[0] }

func (q *sendQueue) push(c *conn) {
	c.queuePos = len(q.items)
	q.items = append(q.items, c)
	q.up(c.queuePos)
}

// update puts c in its place for its current nextSend: pushed if it is not queued, moved if it
// is. A queued connection whose nextSend changed without this would break the heap order, and
// top would no longer be the connection due first: others due would wait for it.
func (q *sendQueue) update(c *conn) {
	if c.queuePos < 0 {
		q.push(c)
		return
	}
	q.down(c.queuePos)
	q.up(c.queuePos)
}

// pop removes and returns the connection due first.
func (q *sendQueue) pop() *conn {
	c := q.items[0]
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
	q.swap(i, last)
	q.items = q.items[:last]
	c.queuePos = -1
	if i < last {
		q.down(i)
		q.up(i)
	}
}

func (q *sendQueue) clear() {
	for _, c := range q.items {
		c.queuePos = -1
	}
	q.items = q.items[:0]
}

func (q *sendQueue) less(i, j int) bool { return q.items[i].nextSend < q.items[j].nextSend }

func (q *sendQueue) swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].queuePos = i
	q.items[j].queuePos = j
}

func (q *sendQueue) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			return
		}
		q.swap(i, parent)
		i = parent
	}
}

func (q *sendQueue) down(i int) {
	n := len(q.items)
	for {
		least := i
		if l := 2*i + 1; l < n && q.less(l, least) {
			least = l
		}
		if r := 2*i + 2; r < n && q.less(r, least) {
			least = r
		}
		if least == i {
			return
		}
		q.swap(i, least)
		i = least
	}
}
