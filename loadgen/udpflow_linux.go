package loadgen

// A UDP flow and its datagrams: what one datagram carries, the window of datagrams in flight, and
// what the flow remembers of the datagrams it gave up on. No syscalls here.

import (
	"encoding/binary"
	"sort"
)

const (
	// udpHeaderLen is the datagram header: a 4-byte flow id and an 8-byte sequence number, both
	// big-endian. The body after it is the pattern of (flow, sequence number), so an echo is
	// checked without a copy of what was sent.
	udpHeaderLen = 12
	// udpSeqStride spreads consecutive datagrams of a flow over the pattern table, so that the body
	// of one sequence number does not match another's. Prime, like the table's period.
	udpSeqStride = 4099
	// udpLostMemory is how many of its timed-out datagrams a flow remembers, so that their late
	// echoes count as late rather than as duplicates. It is allocated on a flow's first loss; past
	// it the oldest is forgotten, and an echo of a forgotten one counts as a duplicate.
	udpLostMemory = 256
)

// putUDPHeader writes the header of datagram seq of flow id into b, which is at least udpHeaderLen.
func putUDPHeader(b []byte, id uint32, seq uint64) {
	binary.BigEndian.PutUint32(b[0:4], id)
	binary.BigEndian.PutUint64(b[4:12], seq)
}

// parseUDPHeader reads a header written by putUDPHeader; b is at least udpHeaderLen.
func parseUDPHeader(b []byte) (id uint32, seq uint64) {
	return binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint64(b[4:12])
}

// udpBodyOffset is where in flow id's pattern the body of datagram seq starts.
func udpBodyOffset(seq uint64) uint64 { return seq * udpSeqStride }

// encodeDatagram fills b, the whole datagram, for datagram seq of flow id. A datagram shorter than
// the header carries a prefix of it, which cannot be read back (Result.Unmatched).
func encodeDatagram(b []byte, id uint32, seq uint64) {
	if len(b) < udpHeaderLen {
		var h [udpHeaderLen]byte
		putUDPHeader(h[:], id, seq)
		copy(b, h[:])
		return
	}
	putUDPHeader(b, id, seq)
	fillPattern(b[udpHeaderLen:], uint64(id), udpBodyOffset(seq))
}

// udpPending is one datagram in flight.
type udpPending struct {
	seq      uint64
	sentAt   int64 // the actual send
	intended int64 // open loop: when the schedule wanted it sent; closed loop: sentAt
	size     uint32
}

// udpLost is a datagram its flow timed out, remembered for its late echo.
type udpLost struct {
	seq      uint64
	inCohort bool // it was sent in the window, so its late echo counts in Result.Late
}

// udpFlow is one UDP flow: a connected socket from its own ephemeral port.
type udpFlow struct {
	index int    // position in the worker's table, the epoll data of its socket
	id    uint32 // global flow number, 0..Conns-1, the header's flow id
	fd    int    // -1 once closed
	dead  bool   // a send failed for good; its socket is closed

	// blocked: a send met a full socket buffer (EAGAIN, ENOBUFS); EPOLLOUT is armed until it
	// drains, and no datagram is sent meanwhile.
	blocked   bool
	refilling bool // queued in the worker's refill list

	nextSeq uint64 // the next datagram's sequence number: datagrams sent so far
	sizeIdx int    // index in Config.Sizes of the next datagram's size

	// pending is the window: a ring of the datagrams in flight, cap Pipeline, in sequence order
	// (they are sent in that order; one answered out of turn is taken out of the middle), so the
	// front is always the oldest, the one whose timeout comes first.
	pending []udpPending
	head    int
	count   int

	highestEchoed uint64 // highest sequence number echoed so far, for Reordered
	anyEchoed     bool
	echoedInWin   bool

	lost     []udpLost // ring of up to udpLostMemory timed-out datagrams, nil until the first
	lostNext int       // where the next one goes once the ring is full

	// Open loop: the flow's place in its worker's schedule, and the sends the schedule wanted while
	// the window was full, which go out (late) as slots free. owedFrom is the intended time of the
	// oldest; the rest follow it at the schedule's interval.
	phase    int64
	owed     int
	owedFrom int64
}

func (f *udpFlow) at(i int) *udpPending {
	i += f.head
	if i >= len(f.pending) {
		i -= len(f.pending)
	}
	return &f.pending[i]
}

func (f *udpFlow) front() *udpPending { return &f.pending[f.head] }

func (f *udpFlow) full() bool { return f.count == len(f.pending) }

// push adds a datagram just sent; it has the highest sequence number in flight.
func (f *udpFlow) push(p udpPending) {
	*f.at(f.count) = p
	f.count++
}

// find returns the position of datagram seq in the window, or -1.
func (f *udpFlow) find(seq uint64) int {
	i := sort.Search(f.count, func(i int) bool { return f.at(i).seq >= seq })
	if i < f.count && f.at(i).seq == seq {
		return i
	}
	return -1
}

// remove takes the i-th datagram out of the window, keeping the rest in order. Echoes mostly
// arrive in order, so i is mostly 0 and this is a step of the head; otherwise the shorter side of
// the ring moves by one.
func (f *udpFlow) remove(i int) {
	if i < f.count/2 {
		for j := i; j > 0; j-- {
			*f.at(j) = *f.at(j - 1)
		}
		f.head++
		if f.head == len(f.pending) {
			f.head = 0
		}
	} else {
		for j := i; j < f.count-1; j++ {
			*f.at(j) = *f.at(j + 1)
		}
	}
	f.count--
}

// rememberLost records a timed-out datagram for its late echo, forgetting the oldest past
// udpLostMemory.
func (f *udpFlow) rememberLost(l udpLost) {
	if len(f.lost) < udpLostMemory {
		if f.lost == nil {
			f.lost = make([]udpLost, 0, udpLostMemory)
		}
		f.lost = append(f.lost, l)
		return
	}
	f.lost[f.lostNext] = l
	f.lostNext = (f.lostNext + 1) % udpLostMemory
}

// takeLost reports whether seq is a remembered timed-out datagram, and forgets it, so that a
// second late echo of it counts as a duplicate. Only echoes of datagrams not in flight get here,
// rare on a healthy run, so a scan of the ring is cheap enough.
func (f *udpFlow) takeLost(seq uint64) (udpLost, bool) {
	for i := range f.lost {
		if f.lost[i].seq == seq {
			l := f.lost[i]
			f.lost[i].seq = ^uint64(0) // never sent: nextSeq does not get there
			return l, true
		}
	}
	return udpLost{}, false
}
