//go:build !poll_opt

package async

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// gnet v2.10.0 has no way to stop reading a connection: every EPOLLIN makes its loop read(2), and
// whatever the handler does not take is appended to an unbounded per-connection ring (gnet issues
// #712 and #722 ask for it; pull request #713 is not merged). Backpressure needs exactly that, so
// this file reaches into gnet for the one thing it needs, the epoll fd of a connection's loop,
// and changes that connection's epoll interest itself. It only reads gnet's unexported fields
// (reflect allows reading them without unsafe), and what it writes into epoll must match what gnet
// itself registers: the fd as epoll_data, which holds only for gnet's default poller (with the
// poll_opt build tag gnet stores a pointer there, and this file is not built). checkGnetLayout
// refuses to start unless the binary was built with gnet at exactly the pinned version, unreplaced,
// and the fields are where that version has them.

// gnetModule at pinnedGnet is the one gnet release whose internals this file has been checked
// against; go.mod pins it.
const (
	gnetModule = "github.com/panjf2000/gnet/v2"
	pinnedGnet = "v2.10.0"
)

// loopLayout is where the epoll fd sits inside gnet: (*eventloop).poller is a *netpoll.Poller,
// whose fd field is the epoll instance.
var loopLayout struct {
	once     sync.Once
	err      error
	loopType reflect.Type // *gnet.eventloop
	poller   []int        // field index of poller in eventloop
	pollerFD []int        // field index of fd in netpoll.Poller
}

// checkGnetLayout checks the gnet version the binary was built with, then finds the epoll fd
// field from gnet's types alone, before any loop exists: gnet.Engine holds *engine, whose ingress
// field is the *eventloop type every loop has.
func checkGnetLayout() error {
	l := &loopLayout
	l.once.Do(func() {
		if err := checkGnetVersion(); err != nil {
			l.err = fmt.Errorf("async: %w; this model reads the epoll fd of a gnet %s event loop to pause reading, which gnet offers no API for: build with %s %s unreplaced, or port pause_linux.go", err, pinnedGnet, gnetModule, pinnedGnet)
			return
		}
		fail := func(what string) {
			l.err = fmt.Errorf("async: gnet's internals have changed (%s); this model reads the epoll fd of a gnet %s event loop to pause reading, which gnet offers no API for: pin %s %s or port pause_linux.go", what, pinnedGnet, gnetModule, pinnedGnet)
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

// checkGnetVersion requires the build to have used gnet at exactly pinnedGnet with no replace
// directive: a replaced or other version may keep the field names and still store something else.
// go test records no dependencies in a test binary's build info (golang.org/issue/33976), so a test
// binary with none is let through: it is built from this module's go.mod, and the field checks
// still run. Every other binary built with modules lists gnet, since this package imports it.
func checkGnetVersion() error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("the binary has no module build info to check the gnet version against")
	}
	for _, dep := range info.Deps {
		if dep.Path != gnetModule {
			continue
		}
		if dep.Replace != nil {
			return fmt.Errorf("%s %s is replaced by %s %s", gnetModule, dep.Version, dep.Replace.Path, dep.Replace.Version)
		}
		if dep.Version != pinnedGnet {
			return fmt.Errorf("built with %s %s, not %s", gnetModule, dep.Version, pinnedGnet)
		}
		return nil
	}
	if len(info.Deps) == 0 && strings.HasSuffix(info.Path, ".test") {
		return nil
	}
	return fmt.Errorf("the binary's build info does not list %s", gnetModule)
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
