// Package server is the small contract every echobench IO model implements.
//
// A model is a way of serving connections: a thread per connection, one thread busy-polling
// non-blocking sockets, select(2), epoll, a gnet reactor, io_uring, a process per connection.
// Whatever the model, the job is the same, an echo: every byte a client sends comes back to it,
// in order, on the same connection. Because they share this contract, one conformance suite
// (package modeltest), one command (cmd/echoserver) and one harness (package bench) treat every
// model alike.
//
// A model registers itself from its package's init function with Register. Start binds the
// listening socket before it returns, so Addr is known at once, and serves in the background until
// Close.
package server

import (
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultOutboundLimit bounds the bytes a model buffers toward one client that does not read its
// echoes. 4 MiB is large enough that a client writing a 4 MiB burst before it reads is still
// served, and small enough that a thousand stalled readers cost at most 4 GiB, not unbounded
// memory. A model that reaches the limit stops reading from that connection until the client
// drains it (backpressure), so TCP flow control pushes the stall back to the writer.
const DefaultOutboundLimit = 4 << 20

// Config is what every model accepts. Zero values mean the model's default. Every field but Addr
// and Logf is also a command-line flag, bound in one place (RegisterFlags, in flags.go), so that
// a field added here reaches echoserver, echobench and the harness without being declared again.
type Config struct {
	// Addr is the TCP address to listen on, such as "127.0.0.1:0". It is not among the flags
	// RegisterFlags binds: for echoserver -addr is where to listen, for echobench where the
	// target is, so each command declares its own.
	Addr string
	// Loops is the number of event loops or threads for models that have a fixed number of them
	// (epoll, async, uring). 0 means GOMAXPROCS.
	Loops int
	// Pool caps how many connections are served at once, for models that have a pool (blocking,
	// process): the rest wait in the listen backlog. 0 means one thread or process per connection.
	Pool int
	// OutboundLimit bounds the bytes buffered toward one client; 0 means DefaultOutboundLimit.
	OutboundLimit int
	// ReusePort asks models that support it to open one SO_REUSEPORT listener per loop.
	ReusePort bool
	// LockOSThread asks models that support it to pin each loop to its own OS thread.
	LockOSThread bool
	// UDP asks for the model's UDP variant (Model.StartUDP): an echo of datagrams on a UDP socket
	// bound to Addr instead of TCP connections.
	UDP bool
	// Work is CPU-bound work done for each message before it is echoed, standing for a request's
	// computation; Block is a blocking call made for each message, standing for a database call.
	// Each model makes them where it would natively (see Handler). 0 means none.
	Work, Block time.Duration
	// PollSleep is how long the nonblocking model sleeps after a pass over its sockets that found
	// nothing to do; 0 means it never sleeps (pure busy polling). Other models ignore it.
	PollSleep time.Duration
	// Logf receives notable events (a rejected connection, a failed accept). nil means log.Printf.
	Logf func(format string, args ...any)
}

// Outbound returns the configured outbound limit, or DefaultOutboundLimit.
func (c Config) Outbound() int {
	if c.OutboundLimit > 0 {
		return c.OutboundLimit
	}
	return DefaultOutboundLimit
}

// Log reports a notable event through Logf, or through the standard logger.
func (c Config) Log(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Server is a running model.
type Server interface {
	// Addr is the bound listening address.
	Addr() net.Addr
	// Close stops accepting, closes every connection, and returns once every goroutine, thread,
	// child process and file descriptor the server owns is gone. It is safe to call more than once.
	Close() error
	// Wait blocks until the server has stopped, by Close or by a fatal error, and returns that
	// error (nil after a clean Close).
	Wait() error
	// Stats returns the server's own counters, so a load generator's figures can be checked
	// against them.
	Stats() Stats
}

// Model is one registered IO model.
type Model struct {
	// Name is what -model selects: "epoll", "select", ...
	Name string
	// Summary is one line for listings.
	Summary string
	// Start binds cfg.Addr and starts serving in the background.
	Start func(cfg Config) (Server, error)
	// StartUDP, if set, is the model's UDP variant: it binds a UDP socket at cfg.Addr and echoes
	// every datagram to its sender, byte for byte (an empty datagram too). It never queues more
	// than a fixed number of replies: a datagram it cannot answer is counted in Stats.Dropped.
	StartUDP func(cfg Config) (Server, error)
	// Available reports why the model cannot run on this machine (an old kernel, a disabled
	// syscall), or nil. A nil func means always available.
	Available func() error
	// Procs, if set, is the GOMAXPROCS the model asks for when it has a process of its own
	// (cmd/echoserver), which raises GOMAXPROCS to it, never lowers it, and leaves it alone when
	// the GOMAXPROCS environment variable is set. Go's default, one P per CPU, suits every model
	// whose threads are few; models/blocking, whose threads are many, says why it asks for more.
	// Tests and other processes that host several models do not apply it.
	Procs func(cfg Config) int
}

// Launch starts m with cfg: its UDP variant when cfg.UDP asks for one, else its TCP server.
func (m Model) Launch(cfg Config) (Server, error) {
	if !cfg.UDP {
		return m.Start(cfg)
	}
	if m.StartUDP == nil {
		return nil, fmt.Errorf("model %s has no UDP variant; models with one: %s", m.Name, strings.Join(UDPNames(), " "))
	}
	return m.StartUDP(cfg)
}

// ErrUnavailable is wrapped by errors that say a model cannot run on this machine.
var ErrUnavailable = errors.New("unavailable")

var (
	mu     sync.Mutex
	models = map[string]Model{}
)

// Register adds a model. It panics on a duplicate name, which is a programming error.
func Register(m Model) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := models[m.Name]; dup {
		panic("server: model registered twice: " + m.Name)
	}
	models[m.Name] = m
}

// Lookup returns the model registered under name.
func Lookup(name string) (Model, error) {
	mu.Lock()
	m, ok := models[name]
	mu.Unlock()
	if !ok {
		return Model{}, fmt.Errorf("unknown model %q; known models: %s", name, strings.Join(Names(), " "))
	}
	return m, nil
}

// Names lists the registered models, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UDPNames lists the registered models that have a UDP variant, sorted.
func UDPNames() []string {
	var udp []string
	for _, n := range Names() {
		if m, _ := Lookup(n); m.StartUDP != nil {
			udp = append(udp, n)
		}
	}
	return udp
}

// CheckAvailable returns nil if the model can run here, or an error wrapping ErrUnavailable.
func (m Model) CheckAvailable() error {
	if m.Available == nil {
		return nil
	}
	if err := m.Available(); err != nil {
		return fmt.Errorf("model %s %w: %w", m.Name, ErrUnavailable, err)
	}
	return nil
}
