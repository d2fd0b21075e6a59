package loadgen

import "bytes"

// The bytes each connection sends are a function of (connection id, stream offset), so the reader
// checks an echo without keeping a copy of what was written. The function is a table lookup: a
// fixed pseudo-random table, entered at a phase that depends on the connection id and advanced by
// the stream offset. Generating and checking are then copy and bytes.Equal over slices of the
// table, which run at memory speed, and a raw-mode write goes out straight from the table.
const (
	// patternPeriod is prime, so losing or repeating a power-of-two-sized chunk of the stream still
	// shifts the pattern and is caught; only a slip of an exact multiple of 65521 bytes is not.
	patternPeriod = 65521
	// patternSpan is the longest run of pattern bytes handed out as one slice. The table repeats its
	// first patternSpan bytes after the period so that any run up to this length is contiguous.
	patternSpan = 64 << 10
	// patternStride spreads connection ids over the period, so that the echo of one connection
	// delivered on another does not match.
	patternStride = 7919
)

var patternTable = makePatternTable()

func makePatternTable() []byte {
	t := make([]byte, patternPeriod+patternSpan)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i < patternPeriod; i++ {
		// xorshift64*: cheap, and every byte value is equally likely, so a flipped bit or a zeroed
		// run never matches by accident for long.
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		t[i] = byte((x * 0x2545F4914F6CDD1D) >> 56)
	}
	// Byte by byte rather than one copy: the span is longer than the period, so the tail repeats
	// bytes it has itself just written, which an overlapping copy (a memmove) would not do.
	for i := patternPeriod; i < len(t); i++ {
		t[i] = t[i-patternPeriod]
	}
	return t
}

// patternAt returns the pattern bytes of connection id from stream offset off on, at most n and at
// most patternSpan of them. The slice aliases the shared table and must not be written.
func patternAt(id, off uint64, n int) []byte {
	start := (off + id*patternStride) % patternPeriod
	if n > patternSpan {
		n = patternSpan
	}
	return patternTable[start : start+uint64(n)]
}

// fillPattern writes the pattern of connection id from stream offset off into b.
func fillPattern(b []byte, id, off uint64) {
	for len(b) > 0 {
		n := copy(b, patternAt(id, off, len(b)))
		b = b[n:]
		off += uint64(n)
	}
}

// matchesPattern reports whether b is exactly the pattern of connection id from stream offset off.
func matchesPattern(b []byte, id, off uint64) bool {
	for len(b) > 0 {
		want := patternAt(id, off, len(b))
		if !bytes.Equal(b[:len(want)], want) {
			return false
		}
		b = b[len(want):]
		off += uint64(len(want))
	}
	return true
}
