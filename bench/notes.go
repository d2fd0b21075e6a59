package bench

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"echobench/report"
)

// notes gathers what qualifies the figures under the tables, grouped by kind and then by cell,
// so that a condition shared by many rows of one cell reads as one line, and a row that is n/a
// for one reason in many cells reads as one line too.
type notes struct {
	kinds  []string
	groups map[string][]string    // kind → its groups, in the order first noted
	items  map[[2]string][]string // (kind, group) → what the group lists
}

func (n *notes) add(kind, group, item string) {
	if n.groups == nil {
		n.groups = map[string][]string{}
		n.items = map[[2]string][]string{}
	}
	if _, ok := n.groups[kind]; !ok {
		n.kinds = append(n.kinds, kind)
	}
	key := [2]string{kind, group}
	if _, ok := n.items[key]; !ok {
		n.groups[kind] = append(n.groups[kind], group)
	}
	n.items[key] = append(n.items[key], item)
}

// Note kinds, in the words printed before the cells and rows they apply to.
const (
	noteNA       = "n/a"
	noteBoth     = "both echobench and the server saturated their cores (loopback splits the kernel's work between them), so msgs/s is the pair's limit; compare srv µs/msg"
	noteClient   = "echobench saturated its core while the server did not: msgs/s is a floor for the server; compare srv µs/msg"
	noteMeter    = meterMarker + " meter-limited: echobench's own schedule lag is more than a tenth of the latency at p99 or p99.9 (report.JudgeMeter), so that latency is partly the load generator's"
	noteBacklog  = "fewer connections echoed in the window than were established: the rest waited in the listen backlog (a pool, or thread or process creation too slow)"
	noteRejected = "the server closed connections unserved, by its own count"
	noteVerify   = "VERIFY FAILURES: the server echoed wrong bytes"
	noteFailed   = "connects failed or the run ended in error"
	notePartial  = "some runs failed; the figures are of the runs that did not"
	noteKnee     = "knee searches with a note (stopped early, or the knee's own probe was meter-limited)"
	noteWarning  = "echobench warned"
)

// noteHost is a note kind like those above, with report's threshold in it.
var noteHost = fmt.Sprintf("host-limited: the hypervisor took at least %g%% of echobench's or the server's CPUs during the window (steal, report.StealSharePct), so the latency tails are partly the host's", report.StealSharePct)

// qualify notes what a (row, cell) figure needs said beside it.
func (n *notes) qualify(row string, c Cell, r *Result) {
	if r == nil {
		return
	}
	ran := len(r.Runs) > 0 || len(r.Knees) > 0
	if r.NA != "" {
		if ran {
			n.add(notePartial, c.Name, row+": "+r.NA)
		} else {
			n.add(noteNA, row+"\x00"+r.NA, c.Name)
		}
	}
	for _, k := range r.Knees {
		if k.Note != "" {
			n.add(noteKnee, c.Name, row+": "+k.Note)
			break
		}
	}
	if len(r.Runs) == 0 || c.Sweep == SweepKnee {
		return // a knee cell's summaries are of single probes: its search speaks for it
	}
	var both, client, verify, rejected uint64
	var failed, meter, host []string
	for _, s := range r.Runs {
		if m := s.MeterLimited; m != nil {
			meter = append(meter, m.Text())
		}
		if h := s.HostLimited; h != nil {
			host = append(host, h.Text())
		}
		switch {
		case s.BothSaturated:
			both++
		case s.ClientSaturated:
			client++
		}
		verify += s.VerifyFailuresTotal
		rejected = max(rejected, s.ServerRejected)
		if s.ConnsFailed > 0 || s.Error != "" {
			failed = append(failed, fmt.Sprintf("%d connects failed %s", s.ConnsFailed, firstLine(s.Error)))
		}
	}
	if both > 0 {
		n.add(noteBoth, c.Name, row)
	} else if client > 0 {
		n.add(noteClient, c.Name, row)
	}
	if len(meter) > 0 {
		n.add(noteMeter, c.Name, fmt.Sprintf("%s (%d of %d runs; %s)", row, len(meter), len(r.Runs), meter[0]))
	}
	if len(host) > 0 {
		n.add(noteHost, c.Name, fmt.Sprintf("%s (%d of %d runs; %s)", row, len(host), len(r.Runs), host[0]))
	}
	if s := r.Runs[0]; s.ConnsEchoed < s.ConnsEstablished && c.Sweep != SweepReconnect && c.Sweep != SweepIdle {
		n.add(noteBacklog, c.Name, fmt.Sprintf("%s %d of %d", row, s.ConnsEchoed, s.ConnsEstablished))
	}
	if rejected > 0 {
		n.add(noteRejected, c.Name, fmt.Sprintf("%s %d", row, rejected))
	}
	if verify > 0 {
		n.add(noteVerify, c.Name, fmt.Sprintf("%s %d messages", row, verify))
	}
	for _, f := range failed {
		n.add(noteFailed, c.Name, row+": "+f)
	}
	// echobench's other warnings (a server that had to be killed after SIGTERM, -c beyond the
	// ephemeral ports) are passed on; saturation and verify failures are noted above already.
	for _, w := range warnings(r) {
		if !strings.Contains(w, "saturated") && !strings.Contains(w, "of its") && !strings.Contains(w, "VERIFY") {
			n.add(noteWarning, c.Name, row+": "+w)
		}
	}
}

// warnings are echobench's warnings over a result's runs, each once. They are read from the
// reports, because Result.Warning joins them with "; ", which some warnings contain themselves
// (the client-saturation one ends "; give echobench more CPUs"), so splitting it would pass on
// the tail of a warning whose head was filtered out. Without readable reports (synthetic
// results), Result.Warning is split after all.
func warnings(r *Result) []string {
	var all []string
	read := false
	for _, f := range r.Files {
		rep, err := readReport(f)
		if err != nil {
			continue
		}
		read = true
		all = append(all, rep.Warnings...)
	}
	if !read {
		all = strings.Split(r.Warning, "; ")
	}
	var unique []string
	seen := map[string]bool{}
	for _, w := range all {
		if w != "" && !seen[w] {
			seen[w] = true
			unique = append(unique, w)
		}
	}
	return unique
}

func (n *notes) print(w io.Writer) {
	for _, kind := range n.kinds {
		fmt.Fprintln(w)
		if kind == noteNA {
			for _, g := range n.groups[kind] {
				row, reason, _ := strings.Cut(g, "\x00")
				cells := n.items[[2]string{kind, g}]
				printWrapped(w, fmt.Sprintf("  n/a: %s at %s: %s", row, strings.Join(cells, ", "), reason), "      ")
			}
			continue
		}
		printWrapped(w, "  "+kind+":", "    ")
		// Cells whose lists are the same (the same rows saturated at every connection count)
		// share one line.
		var lists []string
		cellsOf := map[string][]string{}
		for _, g := range n.groups[kind] {
			list := joinItems(n.items[[2]string{kind, g}])
			if _, ok := cellsOf[list]; !ok {
				lists = append(lists, list)
			}
			cellsOf[list] = append(cellsOf[list], g)
		}
		for _, list := range lists {
			printWrapped(w, "    "+strings.Join(cellsOf[list], ", ")+": "+list, "      ")
		}
	}
}

// joinItems lists a note's rows; items that hold commas themselves (warnings, errors) are set
// apart by semicolons instead.
func joinItems(items []string) string {
	sep := ", "
	for _, it := range items {
		if strings.Contains(it, ",") {
			sep = "; "
		}
	}
	return strings.Join(items, sep)
}

func printWrapped(w io.Writer, s, indent string) {
	for _, l := range wrap(s, TableWidth, indent) {
		fmt.Fprintln(w, l)
	}
}

// wrap breaks s at spaces into lines of at most width runes, continuing lines with indent (the
// first line keeps its own leading spaces). A word longer than a line (a path in an error) is
// cut where the line ends.
func wrap(s string, width int, indent string) []string {
	var lines []string
	line := ""
	lead := len(s) - len(strings.TrimLeft(s, " "))
	line, s = s[:lead], s[lead:]
	fresh := true // line holds only its indent
	for _, word := range strings.Split(s, " ") {
		for {
			sep := " "
			if fresh {
				sep = ""
			}
			if utf8.RuneCountInString(line)+len(sep)+utf8.RuneCountInString(word) <= width {
				line += sep + word
				fresh = false
				break
			}
			if !fresh {
				lines = append(lines, line)
				line, fresh = indent, true
				continue
			}
			room := width - utf8.RuneCountInString(line)
			r := []rune(word)
			lines = append(lines, line+string(r[:room]))
			line, word = indent, string(r[room:])
		}
	}
	return append(lines, line)
}
