package faults

import (
	"context"
	"fmt"
	"net"
	"time"
)

// slack is what a server's resident memory may grow by beyond what it buffers for clients: the Go
// runtime's heap and stacks settling under a new load, which is not held client data.
const slack = 16 << 20

// stallWriter writes to c without ever reading until its writes block (the server has stopped
// reading it: backpressure) or max bytes are pushed, and returns how much it pushed.
func stallWriter(c net.Conn, max int) int {
	chunk := make([]byte, 64<<10)
	pushed := 0
	for pushed < max {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Write(chunk)
		pushed += n
		if err != nil {
			// A deadline means the writes block; any other error (a reset) ends the push too,
			// and the figure says how far it got.
			return pushed
		}
	}
	return pushed
}

func slowReader() Scenario {
	const outbound = 1 << 20
	return Scenario{
		Name: "slow-reader",
		Rule: fmt.Sprintf("one client writes and never reads: server RSS grows by at most the outbound bound (%d KiB) + %d MiB, and the p99 of the normal clients stays within 2x of theirs without it (or within 1 ms where that is below 1 ms)", outbound>>10, slack>>20),
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start(fmt.Sprintf("-outbound=%d", outbound))
			if err != nil {
				return failed(err)
			}
			before, _, errs := pingPong(ctx, srv.Addr, e.Scale.Normal, e.Scale.Window)
			rss0, err := tree(srv.PID)
			if err != nil {
				return failed(err)
			}
			slow, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				return failed(err)
			}
			defer slow.Close()
			pushed := stallWriter(slow, 256<<20)
			// The slow reader's cost alone, before the normal clients connect again: for a
			// process per connection their hundred new children would count too.
			rss1, err := tree(srv.PID)
			if err != nil {
				return failed(fmt.Errorf("after the slow reader: %w", err))
			}
			during, _, errs2 := pingPong(ctx, srv.Addr, e.Scale.Normal, e.Scale.Window)
			st, err := statsOf(srv)
			if err != nil {
				return failed(err)
			}
			growth := int64(rss1.RSSBytes) - int64(rss0.RSSBytes)
			memOK := growth <= outbound+slack && pushed < 256<<20
			latOK := during <= max(2*before, before+time.Millisecond)
			noErr := len(errs)+len(errs2) == 0
			v, why := judge(e, "slow-reader", memOK && latOK && noErr)
			if v == Limitation && !memOK {
				v, why = Breaks, "" // the limitation is latency; memory must hold for every model
			}
			return Cell{Verdict: v,
				Figure: fmt.Sprintf("RSS +%s, p99 %v -> %v", mib(uint64(max(0, growth))), before.Round(time.Microsecond), during.Round(time.Microsecond)),
				Detail: fmt.Sprintf("the slow client pushed %s before its writes blocked; the server holds %s (bytes in - out); normal clients' errors: %s / %s. %s",
					mib(uint64(pushed)), mib(st.BytesIn-st.BytesOut), formatCounts(errs), formatCounts(errs2), why)}
		},
	}
}

func manySlowReaders() Scenario {
	const outbound = 64 << 10
	return Scenario{
		Name: "many-slow-readers",
		Rule: fmt.Sprintf("N clients write and never read: RSS grows over N idle connections' by at most N x the outbound bound (%d KiB) + %d MiB, the server says what it holds, and others are still served", outbound>>10, slack>>20),
		Run: func(ctx context.Context, e *Env) Cell {
			srv, err := e.start(fmt.Sprintf("-outbound=%d", outbound))
			if err != nil {
				return failed(err)
			}
			n := e.Scale.SlowReaders
			conns, dialErrs := dialMany(srv.Addr, n)
			defer closeAll(conns)
			time.Sleep(300 * time.Millisecond) // let a thread or process per connection start
			idle, err := tree(srv.PID)
			if err != nil {
				return failed(err)
			}
			pushed, burst := 0, make([]byte, 4*outbound)
			for _, c := range conns {
				pushed += stallWriterShort(c, burst)
			}
			time.Sleep(300 * time.Millisecond)
			stalled, err := tree(srv.PID)
			if err != nil {
				return failed(fmt.Errorf("with %d stalled readers: %w", n, err))
			}
			st, err := statsOf(srv)
			if err != nil {
				return failed(err)
			}
			_, echoes, errs := pingPong(ctx, srv.Addr, 5, e.Scale.Window)
			growth := int64(stalled.RSSBytes) - int64(idle.RSSBytes)
			bound := int64(len(conns))*outbound + slack
			heldBytes := int64(st.BytesIn) - int64(st.BytesOut)
			heldOK := heldBytes <= int64(len(conns))*outbound && len(dialErrs) == 0
			ok := growth <= bound && heldOK && len(errs) == 0 && echoes > 0
			v, why := judge(e, "many-slow-readers", ok)
			if v == Limitation && !heldOK {
				v, why = Breaks, "" // what the server holds must stay within the bound for every row
			}
			return Cell{Verdict: v,
				Figure: fmt.Sprintf("%d stalled, RSS +%s (bound %s), server-held %s", len(conns), mib(uint64(max(0, growth))), mib(uint64(bound)), mib(uint64(max(0, heldBytes)))),
				Detail: fmt.Sprintf("%d of %d connected (refused: %s); they pushed %s; RSS %s idle, %s stalled; 5 other clients echoed %d times (errors: %s). %s",
					len(conns), n, formatCounts(dialErrs), mib(uint64(pushed)), mib(idle.RSSBytes), mib(stalled.RSSBytes), echoes, formatCounts(errs), why)}
		},
	}
}

// stallWriterShort pushes burst with a short deadline, for many clients in turn, and returns how
// much of it went.
func stallWriterShort(c net.Conn, burst []byte) int {
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	defer c.SetWriteDeadline(time.Time{})
	n, _ := c.Write(burst)
	return n
}
