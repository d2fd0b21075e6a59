package loadgen

import "encoding/binary"

// Frame mode sends length-prefixed messages, the framing a real protocol needs because TCP is a
// byte stream: the server's echo may arrive split over several reads or merged with the next
// message ("sticky packets"), and only the prefix tells where one message ends. Each frame is
//
//	4-byte big-endian payload length | 8-byte big-endian sequence number | payload
//
// so a message of size s on the wire carries s-frameHeaderLen payload bytes.
const frameHeaderLen = 12

// putFrameHeader encodes the header of a frame with payloadLen payload bytes and sequence number
// seq into b[:frameHeaderLen].
func putFrameHeader(b []byte, payloadLen int, seq uint64) {
	binary.BigEndian.PutUint32(b[0:4], uint32(payloadLen))
	binary.BigEndian.PutUint64(b[4:12], seq)
}

// frameEvent is what frameParser.next found in the bytes it consumed.
type frameEvent int

const (
	frameMore    frameEvent = iota // part of a header; feed more bytes
	frameHeader                    // a header just completed: Length and Seq are valid
	framePayload                   // a chunk of the current frame's payload
)

// frameParser reassembles frames from a byte stream cut at arbitrary points. It never copies
// payload: next reports how many bytes of its input belong to the current header or payload chunk,
// and the caller checks them in place. It keeps only the header being assembled, so its memory
// does not depend on the frame size.
type frameParser struct {
	header [frameHeaderLen]byte
	have   int    // header bytes collected so far; frameHeaderLen while in the payload
	left   int    // payload bytes of the current frame not yet consumed
	Length int    // payload length of the current frame, from its header
	Seq    uint64 // sequence number of the current frame, from its header
}

// next consumes the longest prefix of b that belongs to one header or one payload chunk and
// returns its length and what it was. b must not be empty. After a frameHeader event with Length
// 0, or a framePayload event after which Remaining is 0, the frame is complete and the parser
// expects the next header.
func (p *frameParser) next(b []byte) (int, frameEvent) {
	if p.have < frameHeaderLen {
		n := copy(p.header[p.have:], b)
		p.have += n
		if p.have < frameHeaderLen {
			return n, frameMore
		}
		p.Length = int(binary.BigEndian.Uint32(p.header[0:4]))
		p.Seq = binary.BigEndian.Uint64(p.header[4:12])
		p.left = p.Length
		if p.left == 0 {
			p.have = 0
		}
		return n, frameHeader
	}
	n := min(p.left, len(b))
	p.left -= n
	if p.left == 0 {
		p.have = 0
	}
	return n, framePayload
}

// Remaining is the number of payload bytes of the current frame still to come.
func (p *frameParser) Remaining() int { return p.left }
