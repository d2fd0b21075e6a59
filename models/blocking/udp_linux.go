package blocking

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"echobench/internal/sockutil"
	"echobench/server"
)

// datagramThreadCeiling caps the datagram threads of the thread-per-datagram server (-pool 0)
// alive at once. A datagram thread holds one reply read and not yet sent, which is what
// sockutil.ReplyQueueLimit bounds in every UDP variant, so the same number bounds it here: the
// model holds no more unanswered datagrams (at most MaxDatagram bytes each) than an event loop's
// reply queue. It is a tenth of Go's limit of 10,000 threads, past which the runtime aborts the
// process, leaving room for the threads still exiting after their datagram (a thread outlives its
// datagram by the time it takes to exit) and for the runtime's own. Python's ThreadingUDPServer,
// the shape this copies, has no cap at all; with one, a client flood costs dropped datagrams,
// counted, instead of the process.
const datagramThreadCeiling = sockutil.ReplyQueueLimit

// datagramThreads is the ceiling StartUDP uses; tests lower it.
var datagramThreads = datagramThreadCeiling

// udpSrv is the UDP variant: one blocking UDP socket, shared by every thread that reads it.
type udpSrv struct {
	server.Lifecycle
	server.Counters
	cfg     server.Config
	fd      int
	addr    *net.UDPAddr
	handler server.Handler // cfg's per-message cost, run on the thread that answers the datagram

	threads  sync.WaitGroup // every locked goroutine: the reader or pool threads, datagram threads
	handling atomic.Int64   // datagram threads started and not yet through threadDone
	exiting  exitingThreads

	overCeiling  sockutil.LogBurst // datagrams dropped at datagramThreads
	sendTrouble  sockutil.LogBurst // replies that sendto(2) refused
	recvShortage sockutil.LogBurst // ENOMEM and kin at recvfrom
}

// StartUDP binds a blocking UDP socket at cfg.Addr and answers every datagram on an OS thread:
// with cfg.Pool = N, N threads each loop on recvfrom(2) and sendto(2) on the one socket (N = 1 is
// the single-threaded udp-server of the notes); with Pool = 0, one thread reads and starts a
// thread per datagram, which handles and echoes it and exits (Python's ThreadingUDPServer).
func StartUDP(cfg server.Config) (server.Server, error) {
	if cfg.Pool < 0 {
		return nil, fmt.Errorf("blocking: pool size %d is negative; use 0 for a thread per datagram", cfg.Pool)
	}
	if cfg.Pool > threadCeiling {
		return nil, fmt.Errorf("blocking: a pool of %d threads is past Go's thread limit; use -pool %d or less", cfg.Pool, threadCeiling)
	}
	// Blocking, because the threads sleep in recvfrom(2) itself.
	fd, addr, err := sockutil.ListenUDP(cfg.Addr, false)
	if err != nil {
		return nil, fmt.Errorf("blocking: %w", err)
	}
	s := &udpSrv{cfg: cfg, fd: fd, addr: addr, handler: cfg.Handler()}
	if cfg.Pool > 0 {
		for range cfg.Pool {
			s.startThread(s.poolThread)
		}
	} else {
		s.startThread(s.readThread)
	}
	go s.stopWhenClosing()
	return s, nil
}

func (s *udpSrv) Addr() net.Addr { return s.addr }

func (s *udpSrv) Stats() server.Stats { return s.Snapshot() }

// poolThread is one of cfg.Pool threads. Each sleeps in recvfrom(2) on the shared socket (the
// kernel hands each datagram to one sleeper), answers it, and reads again: while all N are busy,
// datagrams wait in the socket's receive buffer, and the kernel drops what does not fit there.
func (s *udpSrv) poolThread() {
	tid := lockThread()
	defer s.threadDone(tid)
	buf := make([]byte, sockutil.MaxDatagram)
	var from sockutil.Peer
	for {
		n, ok := s.receive(buf, &from)
		if !ok {
			return
		}
		s.answer(buf[:n], &from)
	}
}

// readThread reads datagrams and starts a thread for each one. The datagram is copied out of the
// read buffer for its thread, as Python's server hands each thread a bytes object of its own,
// so the reader can read the next one at once.
func (s *udpSrv) readThread() {
	tid := lockThread()
	defer s.threadDone(tid)
	buf := make([]byte, sockutil.MaxDatagram)
	for {
		var from sockutil.Peer
		n, ok := s.receive(buf, &from)
		if !ok {
			return
		}
		// Only this thread starts datagram threads, so the count cannot pass the ceiling
		// between the check and the start.
		if s.handling.Load() >= int64(datagramThreads) {
			s.Dropped()
			s.overCeiling.Begin(s.cfg.Log, "blocking: %d datagram threads alive, dropping datagrams (Go aborts past 10000 threads)", datagramThreads)
			continue
		}
		s.overCeiling.End(s.cfg.Log, "blocking: answering again below %d datagram threads", datagramThreads)
		datagram := append([]byte(nil), buf[:n]...)
		s.handling.Add(1)
		s.startThread(func() {
			tid := lockThread()
			defer s.threadDone(tid)
			defer s.handling.Add(-1)
			s.answer(datagram, &from)
		})
	}
}

// receive sleeps in recvfrom(2) until a datagram arrives and counts it. Both phases of the read
// happen in that one call: the thread sleeps until a datagram is queued on the socket, then the
// kernel copies it into buf. It returns ok=false once the server is closing, or after a fatal
// error it has recorded.
func (s *udpSrv) receive(buf []byte, from *sockutil.Peer) (int, bool) {
	for {
		n, err := sockutil.Recvfrom(s.fd, buf, from)
		if s.IsClosing() {
			// Close shut the socket's reading side, which wakes every thread asleep here. A
			// datagram read meanwhile is not answered: under a flood the queue never empties,
			// and Close must not wait for it to.
			if err == nil && from.Valid() {
				s.Received(n)
				s.Dropped()
			}
			return 0, false
		}
		switch {
		case err == nil:
			s.recvShortage.End(s.cfg.Log, "blocking: recvfrom works again")
			s.Received(n)
			return n, true
		case sockutil.IsResourceShortage(err):
			// The kernel is short of memory: the datagrams wait in the socket, or the kernel
			// drops them. Retrying at once would spin on it.
			s.recvShortage.Begin(s.cfg.Log, "blocking: recvfrom on fd %d: %v; retrying every %v", s.fd, err, acceptBackoff)
			t := time.NewTimer(acceptBackoff)
			select {
			case <-s.Closing():
				t.Stop()
				return 0, false
			case <-t.C:
			}
		default:
			s.Fail(fmt.Errorf("blocking: recvfrom on fd %d: %w", s.fd, err))
			return 0, false
		}
	}
}

// answer runs the per-message handler on the calling thread, then sends the datagram back to its
// sender with sendto(2), which on a blocking socket sleeps until the send buffer has room.
func (s *udpSrv) answer(datagram []byte, to *sockutil.Peer) {
	if !s.handler.Idle() {
		s.handler.Handle(datagram)
	}
	n, err := sockutil.Sendto(s.fd, datagram, to)
	if err != nil {
		// ENOBUFS, EPERM from a firewall, an unreachable network: this reply is lost, as a
		// datagram may be, and the next one may go through.
		s.Dropped()
		s.sendTrouble.Begin(s.cfg.Log, "blocking: sendto on fd %d: %v; dropping the reply", s.fd, err)
		return
	}
	s.sendTrouble.End(s.cfg.Log, "blocking: sendto works again")
	s.Sent(n)
}

// startThread runs f on a goroutine of its own, which locks itself to a thread (lockThread) and
// ends with threadDone.
func (s *udpSrv) startThread(f func()) {
	s.threads.Add(1)
	go f()
}

// threadDone is a locked goroutine's last act, as in the TCP server.
func (s *udpSrv) threadDone(tid int) {
	s.exiting.add(tid)
	s.threads.Done()
}

// Close asks every thread to stop and returns once they have all exited and the socket is closed.
func (s *udpSrv) Close() error {
	s.BeginClose()
	return s.Wait()
}

// stopWhenClosing tears the server down when Close is called or a thread records a fatal error.
func (s *udpSrv) stopWhenClosing() {
	<-s.Closing()
	// shutdown(2) of the reading side wakes every thread asleep in recvfrom(2), and every later
	// recvfrom returns at once; close(2) would wake none of them. On an unconnected UDP socket it
	// fails with ENOTCONN after doing both (sockutil's TestShutdownWakesRecvfrom), so its error
	// is not checked. Datagram threads still send their replies: the writing side stays open.
	unix.Shutdown(s.fd, unix.SHUT_RD)
	s.threads.Wait()
	if err := unix.Close(s.fd); err != nil {
		s.Fail(fmt.Errorf("blocking: close udp fd %d: %w", s.fd, err))
	}
	if err := s.exiting.waitGone(); err != nil {
		s.Fail(fmt.Errorf("blocking: %w", err))
	}
	s.Stopped()
}
