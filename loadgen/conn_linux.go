package loadgen

// conn is one connection slot of a worker. With Reconnect the slot outlives its sockets: each new
// socket is a new incarnation with a fresh stream id, stream offsets and sequence numbers, while
// the open-loop schedule (nextSend) carries on, so the time spent reconnecting shows up as late
// messages.
type conn struct {
	// The fields every message reads or writes come first, so that they share as few cache lines as
	// possible: a worker's loop goes through a thousand connections between two turns of one, and
	// finds each one's struct evicted by the kernel's network path.
	fd          int    // -1 while the slot has no socket
	gen         uint32 // bumped with every socket, so a stale epoll event for an old fd is ignored
	queueSeq    uint32 // bumped at every push and removal: the sendQueue's current entries carry it
	state       connState
	inQueue     bool  // in the worker's sendQueue
	scheduled   bool  // open loop: nextSend has been started
	echoedInWin bool  // the slot completed at least one message inside the window
	everOpen    bool  // the slot has been established at least once
	failures    uint8 // consecutive failed reconnects, up to maxReconnectFailures (here, it fills padding)
	nextSend    int64 // open loop: intended time of the next message
	queueKey    int64 // the nextSend it was queued at
	echoAt      int64 // when the last completed echo arrived (harvest mode's schedule lag)

	streamID uint64 // pattern id of this incarnation's byte stream
	sent     uint64 // stream bytes written
	queued   uint64 // stream bytes of every message queued so far (sent <= queued)
	received uint64 // stream bytes read back (received <= sent)
	msgIndex uint64 // messages queued by this incarnation: the next one's sequence number
	sizeIdx  int    // index in Config.Sizes of the next message's size: msgIndex mod len(Sizes)

	inflight []message // ring of queued messages not yet fully echoed, cap Pipeline
	head     int
	count    int
	// one is inflight's storage when Pipeline is 1 (setWindow), beside the fields above rather
	// than in an allocation of its own, a cache line away.
	one [1]message

	index       int    // position in the worker's table, the epoll data of its sockets
	slot        int    // global slot number, 0..Conns-1
	incarnation uint64 // sockets this slot has opened before the current one
	connectAt   int64  // when the current connect started
	retryAt     int64  // when a failed reconnect is tried again
	parser      frameParser
}

// setWindow gives c room for pipeline messages in flight. c must not move afterwards: with a
// window of one, inflight points into c itself.
func (c *conn) setWindow(pipeline int) {
	if pipeline == 1 {
		c.inflight = c.one[:]
		return
	}
	c.inflight = make([]message, pipeline)
}

type connState uint8

const (
	stateIdle       connState = iota // not yet connected, or waiting to retry
	stateConnecting                  // non-blocking connect in progress
	stateOpen                        // established, carrying messages
	stateDead                        // given up on: failed connect or IO error without Reconnect
)

// message is one echo in flight. It is written and read once per message, and a streaming run keeps
// Conns × Pipeline of them, far more than the caches hold (at 100 × 1024, 4.9 MB when it took 48
// bytes), so it is kept to 32 bytes: what can be derived is not stored. Its sequence number is its
// position in the ring counted back from msgIndex (seqAt), its start is end - size.
type message struct {
	end      uint64 // stream offset just past its last byte
	queuedAt int64  // when it was queued for writing: the actual send
	intended int64  // open loop: when the schedule wanted it sent
	size     uint32 // its bytes (Config.Sizes are at most 1 GiB)
	failed   bool   // some echoed byte differed from what was sent
}

// start is the stream offset of m's first byte.
func (m *message) start() uint64 { return m.end - uint64(m.size) }

func (c *conn) front() *message { return &c.inflight[c.head] }

// seqAt is the sequence number of the i-th message in flight: messages are numbered in the order
// they were queued, and msgIndex is the number of the next one.
func (c *conn) seqAt(i int) uint64 { return c.msgIndex - uint64(c.count) + uint64(i) }

func (c *conn) at(i int) *message { return &c.inflight[(c.head+i)%len(c.inflight)] }

// push and popFront run once per message, so they wrap the ring with a compare rather than a
// division.
func (c *conn) push() *message {
	i := c.head + c.count
	if i >= len(c.inflight) {
		i -= len(c.inflight)
	}
	c.count++
	return &c.inflight[i]
}

func (c *conn) popFront() {
	c.head++
	if c.head == len(c.inflight) {
		c.head = 0
	}
	c.count--
}

// resetStream starts a new incarnation's byte stream.
func (c *conn) resetStream(conns int) {
	c.streamID = uint64(c.slot) + c.incarnation*uint64(conns)
	c.sent, c.queued, c.received, c.msgIndex, c.sizeIdx = 0, 0, 0, 0, 0
	c.head, c.count = 0, 0
	c.parser = frameParser{}
}

// encodeFrames writes the unsent part of the queued frames into dst and returns how many bytes it
// wrote. Frames are regenerated from their sequence numbers and the pattern rather than kept, so a
// connection holds no outbound buffer however large its messages are.
func (c *conn) encodeFrames(dst []byte) int {
	n := 0
	off := c.sent
	for i := 0; i < c.count && n < len(dst); i++ {
		m := c.at(i)
		if m.end <= off {
			continue
		}
		if start := m.start(); off < start+frameHeaderLen {
			var header [frameHeaderLen]byte
			putFrameHeader(header[:], int(m.size)-frameHeaderLen, c.seqAt(i))
			k := copy(dst[n:], header[off-start:])
			n += k
			off += uint64(k)
			if off < start+frameHeaderLen {
				break
			}
		}
		for off < m.end && n < len(dst) {
			k := copy(dst[n:], patternAt(c.streamID, off, int(m.end-off)))
			n += k
			off += uint64(k)
		}
	}
	return n
}
