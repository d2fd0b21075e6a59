package bench

import (
	"fmt"
	"io"
	"sort"
)

// udpRanked prints the UDP cell: every row with a UDP variant, by msgs/s, with its p99 and its
// loss. Loss is part of a UDP result, not a failure: a server that drops datagrams to keep its
// latency shows both here, where the TCP tables would show neither.
func (g *grid) udpRanked(w io.Writer, c Cell) {
	type udpRow struct {
		name string
		r    *Result
		rate Estimate
	}
	var rows []udpRow
	var missing []string
	for _, name := range g.rows {
		r := g.at(name, c)
		if v := StatMsgsPerSec.Estimate(r); v.N > 0 {
			rows = append(rows, udpRow{name, r, v})
		} else if r != nil {
			missing = append(missing, name)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].rate.Mid > rows[j].rate.Mid })
	t := table{header: []string{"#", "model", "msgs/s", "±95%", "p99 µs", "loss %", "srv µs/msg", "runs"}, left: 2}
	for i, ur := range rows {
		t.add(fmt.Sprint(i+1), ur.name, fmtCount(ur.rate.Mid), fmtPlusMinus(ur.rate),
			fmtPlain(StatP99.Estimate(ur.r).Mid, 0), fmtPlain(StatLossPct.Estimate(ur.r).Mid, 3),
			fmtPlain(StatServerUsMsg.Estimate(ur.r).Mid, 1), fmt.Sprint(ur.rate.N))
	}
	for _, name := range missing {
		t.add("", name, "n/a", "", "", "", "", "0")
	}
	t.print(w)
}
