package lesson

// The notes' two message framings, written out so that claims 9 and 10 can test them: the
// reader that takes one recv for one message (the sticky-packet bug), the struct 'i' length
// header, and the JSON header that replaced it.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// NaiveRead is the notes' first client: one recv of at most bufSize bytes, taken to be one
// message. TCP is a byte stream, so the recv returns whatever has arrived: two messages stuck
// together, or part of one.
func NaiveRead(r io.Reader, bufSize int) ([]byte, error) {
	buf := make([]byte, bufSize)
	n, err := r.Read(buf)
	return buf[:n], err
}

// PackStructI is Python's struct.pack('i', n), the notes' first length header: a native (here
// little-endian) signed 32-bit integer, which refuses a length of 2 GiB or more, as the notes warn.
func PackStructI(n int64) ([]byte, error) {
	if n < math.MinInt32 || n > math.MaxInt32 {
		return nil, fmt.Errorf("struct.error: 'i' format requires %d <= number <= %d, got %d", math.MinInt32, math.MaxInt32, n)
	}
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(int32(n)))
	return b, nil
}

// JSONHeader is the notes' header (000 line 25): the body's total size, a file name and an MD5,
// JSON-encoded. A JSON number carries any size a file can have; only the header's own length goes
// through the 4-byte struct field, and a header is small.
type JSONHeader struct {
	TotalSize int64   `json:"total_size"`
	Filename  *string `json:"filename"`
	MD5       *string `json:"md5"`
}

// MaxJSONHeader bounds the header a reader accepts: the header is a few dozen bytes, and a
// length beyond this is a corrupt stream, not a header to allocate for.
const MaxJSONHeader = 64 << 10

// ErrBodyTooLarge is returned by ReadJSONMessage for a body beyond the reader's bound; the header
// has been read and is returned, the body has not.
var ErrBodyTooLarge = errors.New("message body larger than this reader accepts")

// EncodeJSONHeader is the notes' fix, as sent before the body: the header's length as struct
// 'i', then the header.
func EncodeJSONHeader(h JSONHeader) ([]byte, error) {
	j, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encoding the header: %w", err)
	}
	prefix, err := PackStructI(int64(len(j)))
	if err != nil {
		return nil, err
	}
	return append(prefix, j...), nil
}

// ReadJSONMessage reads one message framed by EncodeJSONHeader and its body, reading exactly as
// many bytes as the lengths say however the stream was cut (io.ReadFull): the reassembly a naive
// reader lacks. A body beyond maxBody is refused with ErrBodyTooLarge, unread.
func ReadJSONMessage(r io.Reader, maxBody int64) (JSONHeader, []byte, error) {
	var h JSONHeader
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return h, nil, fmt.Errorf("reading the header length: %w", err)
	}
	n := int32(binary.LittleEndian.Uint32(prefix[:]))
	if n < 0 || n > MaxJSONHeader {
		return h, nil, fmt.Errorf("header length %d; want 0..%d (a corrupt or unframed stream)", n, MaxJSONHeader)
	}
	j := make([]byte, n)
	if _, err := io.ReadFull(r, j); err != nil {
		return h, nil, fmt.Errorf("reading a %d-byte header: %w", n, err)
	}
	if err := json.Unmarshal(j, &h); err != nil {
		return h, nil, fmt.Errorf("decoding the header: %w", err)
	}
	if h.TotalSize < 0 || h.TotalSize > maxBody {
		return h, nil, fmt.Errorf("%w: total_size %d, bound %d", ErrBodyTooLarge, h.TotalSize, maxBody)
	}
	body := make([]byte, h.TotalSize)
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, fmt.Errorf("reading a %d-byte body: %w", h.TotalSize, err)
	}
	return h, body, nil
}
