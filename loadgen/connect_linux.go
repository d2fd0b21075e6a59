package loadgen

// Connecting: the non-blocking connect of a slot, its completion, and what a failure costs the
// slot.

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// sourceAddrs returns n source addresses, 127.0.0.2 upward, for one worker: unix.Bind writes into
// the Sockaddr it is given, so workers must not share them. 127.0.0.1 is left out so that a
// single-source run and a spread one never share a source address.
func sourceAddrs(n int) []unix.SockaddrInet4 {
	addrs := make([]unix.SockaddrInet4, n)
	for i := range addrs {
		addrs[i].Addr = [4]byte{127, 0, 0, byte(2 + i)}
	}
	return addrs
}

// startConnect opens a socket for slot c and starts a non-blocking connect.
func (w *worker) startConnect(c *conn, now int64) {
	fd, err := unix.Socket(w.sh.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		// EMFILE or ENFILE: this process or the system is out of descriptors.
		w.connectFailed(c, err, now)
		return
	}
	// Small messages must leave at once even while earlier ones are unacknowledged (Pipeline > 1);
	// Nagle would hold them back and measure the delayed-ACK timer instead of the server.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		w.connectFailed(c, err, now)
		return
	}
	if w.sh.harvest {
		if err := enableRxTimestamps(fd); err != nil {
			unix.Close(fd)
			w.connectFailed(c, fmt.Errorf("setsockopt SO_TIMESTAMPNS: %w (Config.WakeOnEcho does without)", err), now)
			return
		}
	}
	if len(w.sources) > 0 {
		// IP_BIND_ADDRESS_NO_PORT leaves the port to connect, which picks one that is free for
		// this destination; a bind that picked the port itself would need it free for every one.
		err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err == nil {
			err = unix.Bind(fd, &w.sources[c.slot%len(w.sources)])
		}
		if err != nil {
			unix.Close(fd)
			w.connectFailed(c, err, now)
			return
		}
	}
	c.fd = fd
	c.gen++
	c.connectAt = now
	c.state = stateConnecting
	w.connecting++
	err = unix.Connect(fd, w.addr)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EINTR) {
		// EINTR on a non-blocking connect still leaves it in progress, like EINPROGRESS.
		// Anything else (ECONNREFUSED on loopback, EADDRNOTAVAIL when ephemeral ports run out)
		// is final.
		w.connectFailed(c, err, now)
		return
	}
	// Edge-triggered, and registered once for both directions: EPOLLOUT reports the connect's
	// completion and later a send buffer with room again; EPOLLIN reports echoes. No epoll_ctl is
	// needed to arm or disarm writing, and a loop that has nothing to write simply ignores the
	// EPOLLOUT bit. Every edge is acted on: reads go until a short read, writes until done or
	// EAGAIN.
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
		Fd:     int32(c.index),
		Pad:    int32(c.gen),
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.connectFailed(c, fmt.Errorf("epoll_ctl add fd %d: %w", fd, err), now)
	}
}

// finishConnect handles the completion of a non-blocking connect.
func (w *worker) finishConnect(c *conn) {
	now := w.sh.clock.now()
	soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = unix.Errno(soerr)
	}
	if err != nil {
		w.connectFailed(c, err, now)
		return
	}
	w.connecting--
	w.open++
	w.st.established++
	w.timedOutInARow = 0
	recordMicros(w.st.connectLatency, now-c.connectAt)
	c.state = stateOpen
	c.failures = 0
	if !c.everOpen {
		c.everOpen = true
		w.unresolved--
		w.st.lastEstablished = now
	} else if w.inWindow(now) {
		w.st.reconnects++
	}
	c.resetStream(w.sh.cfg.Conns)
	if w.sh.cfg.Rate > 0 && !c.scheduled {
		c.scheduled = true
		c.nextSend = firstTurn(slotPhase(c.slot, w.sh.cfg.Conns, w.sh.interval), w.sh.interval, now)
	}
	w.fill(c, now)
	w.flush(c)
}

// connectFailed counts a failed connect and decides the slot's fate: a slot of the initial ramp
// is given up on; a reconnecting slot retries a few times after a pause.
func (w *worker) connectFailed(c *conn, err error, now int64) {
	w.st.failed++
	w.st.connectErrors[errnoName(err)]++
	w.newErrors++
	if c.fd >= 0 {
		unix.Close(c.fd) // also removes it from the epoll set
		c.fd = -1
	}
	if c.state == stateConnecting {
		w.connecting--
	}
	c.incarnation++
	if !c.everOpen {
		w.unresolved--
		c.state = stateDead
		if errors.Is(err, unix.ETIMEDOUT) {
			w.timedOutInARow++ // see giveUpRamp
		}
		return
	}
	c.failures++
	if w.stopping || c.failures >= maxReconnectFailures {
		c.state = stateDead
		return
	}
	c.state = stateIdle
	c.retryAt = now + int64(reconnectBackoff)
	w.retries = append(w.retries, c)
}
