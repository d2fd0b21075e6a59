package sockutil

// ReadBufferSize is the most one read takes, in every model: 64 KiB is the largest segment
// loopback TCP hands over at once (GSO) and what gnet and most C servers use, so a bulk transfer
// costs few syscalls. An event loop has one such buffer, shared by all its connections since it
// serves one at a time, so the size costs nothing per connection; a thread per connection has one
// per connection.
const ReadBufferSize = 64 << 10

// ReadBuffer is the read buffer's size for a connection whose outbound is bounded by limit: a
// read never takes more than the bound lets the server hold, so a buffer larger than it would
// never fill.
func ReadBuffer(limit int) int { return max(1, min(ReadBufferSize, limit)) }
