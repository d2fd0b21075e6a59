package server

import (
	"crypto/sha256"
	"runtime"
	"sync/atomic"
	"time"
)

// Handler is what a server does for each message besides echoing it: Config.Work and
// Config.Block, the cost of a real request. An echo server does not know where one message ends
// (TCP is a byte stream), so a "message" here is what one read returned: with one message in
// flight per connection, as in ping-pong, that is one message; for a UDP variant it is one
// datagram, exactly.
//
// Where Handle runs is the model's: inline on the event loop (epoll, select, nonblocking, gnet,
// io_uring), in the connection's thread or process (blocking, process), in the connection's
// goroutine (stdnet). That is the point of measuring it: an event loop that handles one message
// for D stalls every connection it serves for D, while a thread per connection stalls only that
// connection.
type Handler struct {
	work, block time.Duration
}

// Handler returns the per-message handler cfg asks for.
func (c Config) Handler() Handler { return Handler{work: c.Work, block: c.Block} }

// Idle reports whether h does nothing, so a hot path can skip calling it.
func (h Handler) Idle() bool { return h.work <= 0 && h.block <= 0 }

// Handle does one message's work: hashing for Work (SHA-256 over the message, or over a fixed
// block when it is shorter, repeated until the thread has spent Work of CPU on it, so that a
// handler preempted on a busy machine still does all of its work: CPU-bound, it holds the
// thread), then sleeping for Block (time.Sleep: the calling goroutine, and with it a locked
// event-loop thread, waits; a goroutine that is not locked leaves its thread to others, as a Go
// database call on the network poller would). It does not change p.
func (h Handler) Handle(p []byte) {
	if h.work > 0 {
		input := p
		if len(input) < sha256.BlockSize {
			input = workBlock[:]
		}
		// The thread's own CPU clock: the goroutine stays on its thread while it reads it.
		runtime.LockOSThread()
		var acc byte
		for start := threadCPU(); threadCPU()-start < h.work; {
			for range 8 { // a few hashes per clock read, which is a system call
				sum := sha256.Sum256(input)
				acc ^= sum[0]
			}
		}
		runtime.UnlockOSThread()
		workSink.Add(uint32(acc))
	}
	if h.block > 0 {
		time.Sleep(h.block)
	}
}

// workBlock is what Handle hashes for a message shorter than one SHA-256 block, so that a 1-byte
// message costs as much per round as a 64-byte one.
var workBlock [sha256.BlockSize]byte

// workSink keeps the compiler from dropping the hashing as dead code; its value means nothing.
var workSink atomic.Uint32
