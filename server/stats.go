package server

import "sync/atomic"

// Stats are a server's own counts of what it did. A load generator compares its byte counts with
// BytesIn and BytesOut, which a model counts at the read and write calls themselves.
type Stats struct {
	Accepted uint64 `json:"accepted"` // connections accepted and served
	Rejected uint64 `json:"rejected"` // connections accepted and closed at once (select's fd ceiling, EMFILE)
	Active   int64  `json:"active"`   // connections open now
	BytesIn  uint64 `json:"bytes_in"` // bytes read from clients
	BytesOut uint64 `json:"bytes_out"`
	// A UDP variant's datagrams: read, echoed, and read but not answered because its bounded
	// reply queue was full (or the reply failed). Zero for TCP.
	DatagramsIn  uint64 `json:"datagrams_in,omitempty"`
	DatagramsOut uint64 `json:"datagrams_out,omitempty"`
	Dropped      uint64 `json:"dropped,omitempty"`
	// Goroutines is filled in by the process that hosts the server (cmd/echoserver's stats line,
	// internal/child), not by the model: the process's goroutines, for a soak to see them grow.
	Goroutines int `json:"goroutines,omitempty"`
}

// Counters is a ready implementation of Stats for models to embed. Each method is one atomic add,
// cheap enough for an event loop's hot path: a model with several loops may keep one Counters per
// loop and add them up in Stats.
type Counters struct {
	accepted, rejected, bytesIn, bytesOut atomic.Uint64
	datagramsIn, datagramsOut, dropped    atomic.Uint64
	active                                atomic.Int64
}

// Opened counts an accepted connection.
func (c *Counters) Opened() { c.accepted.Add(1); c.active.Add(1) }

// Closed counts a connection that has been closed after Opened.
func (c *Counters) Closed() { c.active.Add(-1) }

// Rejected counts a connection accepted and closed at once without being served.
func (c *Counters) Rejected() { c.rejected.Add(1) }

// Read counts n bytes read from a client.
func (c *Counters) Read(n int) { c.bytesIn.Add(uint64(n)) }

// Wrote counts n bytes written to a client.
func (c *Counters) Wrote(n int) { c.bytesOut.Add(uint64(n)) }

// Received counts one datagram of n bytes read from a client.
func (c *Counters) Received(n int) { c.datagramsIn.Add(1); c.bytesIn.Add(uint64(n)) }

// Sent counts one datagram of n bytes echoed to a client.
func (c *Counters) Sent(n int) { c.datagramsOut.Add(1); c.bytesOut.Add(uint64(n)) }

// Dropped counts a datagram read but not answered.
func (c *Counters) Dropped() { c.dropped.Add(1) }

// Snapshot returns the counts so far.
func (c *Counters) Snapshot() Stats {
	return Stats{
		Accepted: c.accepted.Load(),
		Rejected: c.rejected.Load(),
		Active:   c.active.Load(),
		BytesIn:  c.bytesIn.Load(),
		BytesOut: c.bytesOut.Load(),

		DatagramsIn:  c.datagramsIn.Load(),
		DatagramsOut: c.datagramsOut.Load(),
		Dropped:      c.dropped.Load(),
	}
}

// Add returns the sum of two snapshots, for models that keep counters per loop.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Accepted: s.Accepted + o.Accepted,
		Rejected: s.Rejected + o.Rejected,
		Active:   s.Active + o.Active,
		BytesIn:  s.BytesIn + o.BytesIn,
		BytesOut: s.BytesOut + o.BytesOut,

		DatagramsIn:  s.DatagramsIn + o.DatagramsIn,
		DatagramsOut: s.DatagramsOut + o.DatagramsOut,
		Dropped:      s.Dropped + o.Dropped,
	}
}
