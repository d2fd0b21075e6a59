package stdnet

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"

	"echobench/internal/sockutil"
	"echobench/server"
)

// udpSrv is the UDP variant: one socket, shared by cfg.Loops goroutines.
type udpSrv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	conn    *net.UDPConn
	readers sync.WaitGroup

	writeErrors sockutil.LogBurst
}

// StartUDP binds a UDP socket at cfg.Addr with net.ListenUDP and echoes datagrams on it from
// cfg.Loops goroutines (default GOMAXPROCS), at most sockutil.ReplyQueueLimit of them: each
// holds at most one datagram, so that is the most replies the server ever holds.
func StartUDP(cfg server.Config) (server.Server, error) {
	laddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("stdnet: resolve %s: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("stdnet: listen on udp %s: %w", cfg.Addr, err)
	}
	readers := cfg.Loops
	if readers <= 0 {
		readers = runtime.GOMAXPROCS(0)
	}
	s := &udpSrv{cfg: cfg, conn: conn}
	for range min(readers, sockutil.ReplyQueueLimit) {
		s.readers.Add(1)
		go s.serve()
	}
	go func() {
		s.readers.Wait()
		s.Stopped()
	}()
	return s, nil
}

func (s *udpSrv) Addr() net.Addr { return s.conn.LocalAddr() }

func (s *udpSrv) Stats() server.Stats { return s.Snapshot() }

// Close closes the socket, which wakes every goroutine out of its read or write, and waits for
// them to return.
func (s *udpSrv) Close() error {
	if s.BeginClose() {
		s.conn.Close()
	}
	return s.Wait()
}

// serve echoes datagrams until the socket is closed. A read that finds nothing parks the
// goroutine in Go's netpoller, not its thread. The reply needs no queue: a write that finds the
// socket's send buffer full parks the goroutine too, and until it returns this goroutine reads
// nothing more (backpressure by blocking), so the datagrams that arrive meanwhile wait in the
// kernel's receive buffer, which drops what it cannot take.
func (s *udpSrv) serve() {
	defer s.readers.Done()
	buf := make([]byte, sockutil.MaxDatagram) // a datagram never longer than the buffer is never truncated
	handler := s.cfg.Handler()
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.IsClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Go retries EINTR and parks on EAGAIN, and an unconnected socket is not told of
			// its peers' ICMP errors: what is left will not go away by reading again.
			if s.Fail(fmt.Errorf("stdnet: udp read on %s: %w", s.conn.LocalAddr(), err)) {
				s.conn.Close()
			}
			return
		}
		s.Received(n)
		if !handler.Idle() {
			handler.Handle(buf[:n])
		}
		if _, err := s.conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			if s.IsClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// A reason of this reply's own (no route to its sender, a firewall's EPERM): it
			// is dropped and counted, and the next datagram is served.
			s.Dropped()
			s.writeErrors.Begin(s.cfg.Log, "stdnet: udp write to %v: %v; reply dropped", from, err)
			continue
		}
		s.Sent(n)
	}
}
