package loadgen

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

type parsedFrame struct {
	seq     uint64
	payload []byte
}

// frameStream encodes frames with the given payload sizes, payloads from the pattern of stream 7.
func frameStream(sizes []int) ([]byte, []parsedFrame) {
	var stream []byte
	var frames []parsedFrame
	for i, n := range sizes {
		var header [frameHeaderLen]byte
		putFrameHeader(header[:], n, uint64(i))
		stream = append(stream, header[:]...)
		payload := make([]byte, n)
		fillPattern(payload, 7, uint64(len(stream)))
		stream = append(stream, payload...)
		frames = append(frames, parsedFrame{seq: uint64(i), payload: payload})
	}
	return stream, frames
}

// parseChunks feeds the stream to a parser cut into the given chunk lengths (the last chunk takes
// the rest) and returns the frames it reassembled.
func parseChunks(t *testing.T, stream []byte, cuts []int) []parsedFrame {
	t.Helper()
	var p frameParser
	var got []parsedFrame
	var cur *parsedFrame
	feed := func(b []byte) {
		for len(b) > 0 {
			n, ev := p.next(b)
			if n == 0 {
				t.Fatalf("parser consumed nothing of %d bytes", len(b))
			}
			switch ev {
			case frameHeader:
				got = append(got, parsedFrame{seq: p.Seq, payload: []byte{}})
				cur = &got[len(got)-1]
				if p.Length == 0 {
					cur = nil
				}
			case framePayload:
				cur.payload = append(cur.payload, b[:n]...)
				if p.Remaining() == 0 {
					cur = nil
				}
			}
			b = b[n:]
		}
	}
	for _, c := range cuts {
		c = min(c, len(stream))
		feed(stream[:c])
		stream = stream[c:]
	}
	feed(stream)
	if cur != nil {
		t.Fatalf("stream ended inside frame %d", cur.seq)
	}
	return got
}

func checkFrames(t *testing.T, how string, got, want []parsedFrame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: parsed %d frames, want %d", how, len(got), len(want))
	}
	for i := range want {
		if got[i].seq != want[i].seq || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("%s: frame %d: seq %d, %d payload bytes; want seq %d, %d bytes", how, i, got[i].seq, len(got[i].payload), want[i].seq, len(want[i].payload))
		}
	}
}

func TestFrameParserSplitAndMerged(t *testing.T) {
	// Empty, tiny, header-sized and multi-read payloads, back to back.
	stream, want := frameStream([]int{0, 1, 5, 12, 0, 100, 3000, 70000, 2, 0})

	// Merged: the whole stream in one read, every frame stuck to the next.
	checkFrames(t, "merged", parseChunks(t, stream, nil), want)

	// Split into fixed sizes, including one byte at a time, which cuts every header.
	for _, size := range []int{1, 2, 3, 11, 12, 13, 64, 4096} {
		var cuts []int
		for n := 0; n < len(stream); n += size {
			cuts = append(cuts, size)
		}
		checkFrames(t, "fixed cuts", parseChunks(t, stream, cuts), want)
	}

	// Random cuts, which split some frames and merge others.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var cuts []int
		for n := 0; n < len(stream); {
			c := 1 + rng.IntN(200)
			if rng.IntN(10) == 0 {
				c = 1 + rng.IntN(100000)
			}
			cuts = append(cuts, c)
			n += c
		}
		checkFrames(t, "random cuts", parseChunks(t, stream, cuts), want)
	}
}

func TestPatternIsAFunctionOfTheOffset(t *testing.T) {
	// Every byte must be the same whichever slice of the table it is read from: one byte at a
	// time, or inside a full-span run that starts anywhere in the period (including runs that
	// reach the table's repeated tail).
	const id = 27
	for _, off := range []uint64{0, 1, 65000, patternPeriod - id*patternStride%patternPeriod - 1} {
		run := patternAt(id, off, patternSpan)
		for i := range run {
			if one := patternAt(id, off+uint64(i), 1)[0]; one != run[i] {
				t.Fatalf("offset %d: byte %d of a run is %#x, read alone it is %#x", off, i, run[i], one)
			}
		}
	}
	for i := range patternTable {
		if patternTable[i] != patternTable[i%patternPeriod] {
			t.Fatalf("table byte %d does not repeat byte %d", i, i%patternPeriod)
		}
	}
}

func TestPattern(t *testing.T) {
	b := make([]byte, 3*patternSpan+17)
	for _, id := range []uint64{0, 1, 999, 1 << 33} {
		for _, off := range []uint64{0, 1, patternPeriod - 1, 1 << 40} {
			fillPattern(b, id, off)
			if !matchesPattern(b, id, off) {
				t.Fatalf("id %d off %d: pattern does not match itself", id, off)
			}
			// Piecewise generation agrees with one-shot generation.
			if !matchesPattern(b[1000:5000], id, off+1000) {
				t.Fatalf("id %d off %d: a slice of the pattern does not match at its offset", id, off)
			}
			if matchesPattern(b[:4096], id+1, off) || matchesPattern(b[:4096], id, off+1) {
				t.Fatalf("id %d off %d: pattern matches another connection or offset", id, off)
			}
			b[len(b)-1] ^= 1
			if matchesPattern(b, id, off) {
				t.Fatalf("id %d off %d: flipped bit not caught", id, off)
			}
		}
	}
}
