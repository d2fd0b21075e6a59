package modeltest

import (
	"errors"
	"net"
	"sync"
	"testing"

	"echobench/server"
)

// The suite's own test needs a UDP echo that is not one of the models it will judge: this one
// is the simplest correct one, a goroutine in a read-and-reply loop over package net.
func init() {
	server.Register(server.Model{
		Name:     "modeltest-udp",
		Summary:  "the UDP suite's own test server",
		Start:    func(server.Config) (server.Server, error) { return nil, errors.New("UDP only") },
		StartUDP: startToyUDP,
	})
}

type toyUDP struct {
	server.Lifecycle
	server.Counters
	conn *net.UDPConn
	wg   sync.WaitGroup
}

func startToyUDP(cfg server.Config) (server.Server, error) {
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	s := &toyUDP{conn: c}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.Received(n)
			if _, err := c.WriteToUDPAddrPort(buf[:n], from); err != nil {
				s.Counters.Dropped()
				continue
			}
			s.Sent(n)
		}
	}()
	return s, nil
}

func (s *toyUDP) Addr() net.Addr      { return s.conn.LocalAddr() }
func (s *toyUDP) Stats() server.Stats { return s.Snapshot() }
func (s *toyUDP) Close() error {
	if s.BeginClose() {
		s.conn.Close()
		s.wg.Wait()
		s.Stopped()
	}
	return s.Wait()
}

// TestRunUDP runs the UDP suite against the toy server above: a suite that fails a correct
// server would fail every model.
func TestRunUDP(t *testing.T) { RunUDP(t, "modeltest-udp", Options{}) }
