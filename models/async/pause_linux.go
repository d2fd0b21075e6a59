package async

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnet v2.10.0 has no way to stop reading a connection: every EPOLLIN makes its loop read(2), and
// whatever the handler does not take is appended to an unbounded per-connection ring (gnet issues
// #712 and #722 ask for it; pull request #713 is not merged). Backpressure needs exactly that, so
// this file reaches into gnet for the one thing it needs, the epoll fd of a connection's loop,
// and changes that connection's epoll interest itself. It only reads gnet's unexported fields
// (reflect allows reading them without unsafe) and only for the version go.mod pins;
// checkGnetLayout refuses to start if an upgrade has moved them.

// loopLayout is where the epoll fd sits inside gnet: (*eventloop).poller is a *netpoll.Poller,
// whose fd field is the epoll instance.
var loopLayout struct {
	once     sync.Once
	err      error
	loopType reflect.Type // *gnet.eventloop
	poller   []int        // field index of poller in eventloop
	pollerFD []int        // field index of fd in netpoll.Poller
}

// checkGnetLayout finds the epoll fd field from gnet's types alone, before any loop exists:
// gnet.Engine holds *engine, whose ingress field is the *eventloop type every loop has.
func checkGnetLayout() error {
	l := &loopLayout
	l.once.Do(func() {
		fail := func(what string) {
			l.err = fmt.Errorf("async: gnet's internals have changed (%s); this model reads the epoll fd of a gnet v2.10.0 event loop to pause reading, which gnet offers no API for: pin github.com/panjf2000/gnet/v2 v2.10.0 or port pause_linux.go", what)
		}
		eng, ok := reflect.TypeOf(gnet.Engine{}).FieldByName("eng")
		if !ok || eng.Type.Kind() != reflect.Pointer {
			fail("no Engine.eng")
			return
		}
		ingress, ok := eng.Type.Elem().FieldByName("ingress")
		if !ok || ingress.Type.Kind() != reflect.Pointer {
			fail("no engine.ingress")
			return
		}
		poller, ok := ingress.Type.Elem().FieldByName("poller")
		if !ok || poller.Type.Kind() != reflect.Pointer {
			fail("no eventloop.poller")
			return
		}
		fd, ok := poller.Type.Elem().FieldByName("fd")
		if !ok || fd.Type.Kind() != reflect.Int {
			fail("no Poller.fd")
			return
		}
		l.loopType, l.poller, l.pollerFD = ingress.Type, poller.Index, fd.Index
	})
	return l.err
}

// loopEpollFD returns the epoll fd of the gnet loop that serves c.
func loopEpollFD(c gnet.Conn) (int, error) {
	loop := reflect.ValueOf(c.EventLoop())
	if loop.Type() != loopLayout.loopType || loop.IsNil() {
		return -1, fmt.Errorf("gnet conn fd %d: event loop is %v, want %v", c.Fd(), loop.Type(), loopLayout.loopType)
	}
	poller := loop.Elem().FieldByIndex(loopLayout.poller)
	if poller.IsNil() {
		return -1, fmt.Errorf("gnet conn fd %d: event loop has no poller", c.Fd())
	}
	return int(poller.Elem().FieldByIndex(loopLayout.pollerFD).Int()), nil
}

// pauseReading leaves only EPOLLOUT in c's epoll interest, level-triggered as gnet registers it,
// so the loop wakes for c only to write its queue. Nothing else is needed to resume: when gnet's
// write empties the queue it sets the interest back to EPOLLIN itself (eventloop.write, ModRead).
// EPOLLERR and EPOLLHUP are reported whatever the interest, so a reset still closes c at once.
// The event's data is the fd, as gnet's own registrations have it: gnet finds c by it.
func pauseReading(c gnet.Conn) error {
	epfd, err := loopEpollFD(c)
	if err != nil {
		return err
	}
	fd := c.Fd()
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl mod fd %d in epoll %d to EPOLLOUT only: %w", fd, epfd, err)
	}
	return nil
}
