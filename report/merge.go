package report

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// HDR is a report's histograms in HdrHistogram's standard compressed encoding (V2, deflated,
// base64: what HdrHistogram's own tools and libraries read), so that reports of one cell made by
// several agents merge exactly: histograms are merged, never percentiles. Values are µs.
type HDR struct {
	Latency     string `json:"latency,omitempty"`      // corrected for coordinated omission
	Connect     string `json:"connect,omitempty"`      // connect latency
	ScheduleLag string `json:"schedule_lag,omitempty"` // open loop only
}

// encodeHDR encodes h's histograms; one that cannot be encoded is left out.
func encodeHDR(h Hists) *HDR {
	enc := func(x *hdrhistogram.Histogram) string {
		if x == nil || x.TotalCount() == 0 {
			return ""
		}
		b, err := x.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			return ""
		}
		return string(b)
	}
	e := &HDR{Latency: enc(h.Latency), Connect: enc(h.Connect), ScheduleLag: enc(h.ScheduleLag)}
	if *e == (HDR{}) {
		return nil
	}
	return e
}

// Hists decodes e back into histograms (nil ones where e has none).
func (e *HDR) Hists() (Hists, error) {
	var h Hists
	if e == nil {
		return h, nil
	}
	for _, f := range []struct {
		text string
		dst  **hdrhistogram.Histogram
	}{{e.Latency, &h.Latency}, {e.Connect, &h.Connect}, {e.ScheduleLag, &h.ScheduleLag}} {
		if f.text == "" {
			continue
		}
		x, err := hdrhistogram.Decode([]byte(f.text))
		if err != nil {
			return h, fmt.Errorf("decode histogram: %w", err)
		}
		*f.dst = x
	}
	return h, nil
}

// mergeInto adds src's histograms to dst's.
func mergeInto(dst *Hists, src Hists) {
	for _, p := range []struct{ dst, src **hdrhistogram.Histogram }{
		{&dst.Latency, &src.Latency}, {&dst.Connect, &src.Connect}, {&dst.ScheduleLag, &src.ScheduleLag},
	} {
		if *p.src == nil {
			continue
		}
		if *p.dst == nil {
			*p.dst = hdrhistogram.New((*p.src).LowestTrackableValue(), (*p.src).HighestTrackableValue(), int((*p.src).SignificantFigures()))
		}
		(*p.dst).Merge(*p.src)
	}
}

// Merge combines the reports of one cell run by several agents at once into one report, as if one
// load generator had run them all: every agent's runs side by side, messages, bytes and
// connections summed, latency from the merged histograms (never from averaged percentiles), and
// each agent's own summary kept in Agents. It returns, beside the merged report, what the agents'
// settings disagree on; a report without histograms (written before they were kept) is an error.
func Merge(reps []*Report) (*Report, []string, error) {
	if len(reps) == 0 {
		return nil, nil, errors.New("nothing to merge")
	}
	m := &Report{Schema: Schema, Settings: reps[0].Settings, Env: reps[0].Env}
	var h Hists
	var errs []string
	for i, r := range reps {
		if r.HDR == nil || r.HDR.Latency == "" {
			return nil, nil, fmt.Errorf("report %d has no histograms to merge (made by an echobench older than them, or it measured nothing)", i+1)
		}
		rh, err := r.HDR.Hists()
		if err != nil {
			return nil, nil, fmt.Errorf("report %d: %w", i+1, err)
		}
		mergeInto(&h, rh)
		m.Runs = append(m.Runs, r.Runs...)
		m.Warnings = append(m.Warnings, r.Warnings...)
		m.Agents = append(m.Agents, r.Summary)
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("agent %d: %s", i+1, r.Error))
		}
	}
	m.Error = strings.Join(errs, "; ")
	for i := range m.Runs {
		m.Runs[i].Index = i // agent by agent, in the order given
	}
	m.Summarize(reps[0].Summary.Model, h)
	// Summarize treats runs as repeats of one load; the agents ran at once, so their rates and
	// counts add up.
	s := &m.Summary
	s.MsgsPerSec, s.MBPerSec, s.NewConnsPerSec, s.ConnsEstablished, s.ConnsEchoed = 0, 0, 0, 0, 0
	for _, a := range m.Agents {
		s.MsgsPerSec += a.MsgsPerSec
		s.MBPerSec += a.MBPerSec
		s.NewConnsPerSec += a.NewConnsPerSec
		s.ConnsEstablished += a.ConnsEstablished
		s.ConnsEchoed += a.ConnsEchoed
	}
	s.MsgsPerSecStddev, s.MsgsPerSecCI95Low, s.MsgsPerSecCI95High = 0, s.MsgsPerSec, s.MsgsPerSec
	m.Settings.Conns = s.ConnsEstablished
	sv, why := mergedServer(reps)
	if why != "" {
		m.Warnings = append(m.Warnings, "the server's cost is left out of the merged figures: "+why)
	}
	m.SetMergedServer(sv)
	return m, append(settingsDiffer(reps), windowsDiffer(reps)...), nil
}

// mergedServer accounts the server once over the merged window, from the snapshots of it that
// the agents fetched from its stats port (ServerAccounting.WindowOpen and WindowClose): the
// earliest open to the latest close, both on the server's own clock, against every agent's
// messages. It returns nil and no reason when no agent accounted a server, and nil and the
// reason when their accounting cannot be combined into one.
func mergedServer(reps []*Report) (*ServerAccounting, string) {
	accounted := false
	for _, r := range reps {
		for _, run := range r.Runs {
			accounted = accounted || run.Server != nil
		}
	}
	if !accounted {
		return nil, ""
	}
	sv := &ServerAccounting{Source: "stats"}
	var first *ServerSnapshot
	var messages uint64
	for i, r := range reps {
		if len(r.Runs) != 1 {
			return nil, fmt.Sprintf("agent %d has %d runs, and the server's snapshots merge for agents of one run each", i+1, len(r.Runs))
		}
		run := r.Runs[0]
		a := run.Server
		if a == nil || a.WindowOpen == nil || a.WindowClose == nil {
			return nil, fmt.Sprintf("agent %d has no snapshots of the server from its stats port (-server-stats): its server figures, if any, are its own view of the whole server against its share of the load", i+1)
		}
		if first == nil {
			first = a.WindowOpen
			sv.PID, sv.WindowOpen, sv.WindowClose = first.PID, a.WindowOpen, a.WindowClose
		}
		for _, snap := range []*ServerSnapshot{a.WindowOpen, a.WindowClose} {
			if snap.PID != first.PID || !snap.Started.Equal(first.Started) {
				return nil, fmt.Sprintf("agent %d's snapshots are of server pid %d started %s, agent 1's of pid %d started %s: not one server, so no one server's cost",
					i+1, snap.PID, snap.Started.Format(time.RFC3339Nano), first.PID, first.Started.Format(time.RFC3339Nano))
			}
		}
		if a.WindowOpen.Time.Before(sv.WindowOpen.Time) {
			sv.WindowOpen = a.WindowOpen
		}
		if a.WindowClose.Time.After(sv.WindowClose.Time) {
			sv.WindowClose = a.WindowClose
		}
		messages += run.Messages
		sv.PeakRSSBytes = max(sv.PeakRSSBytes, a.PeakRSSBytes)
		sv.RootHWMBytes = max(sv.RootHWMBytes, a.RootHWMBytes)
		sv.PeakThreads = max(sv.PeakThreads, a.PeakThreads)
		sv.PeakProcesses = max(sv.PeakProcesses, a.PeakProcesses)
		sv.Samples += a.Samples
	}
	open, closed := sv.WindowOpen, sv.WindowClose
	wall := closed.Time.Sub(open.Time)
	if wall <= 0 || closed.UserS < open.UserS || closed.SysS < open.SysS {
		return nil, fmt.Sprintf("the server's snapshots run backwards (open at %s, close at %s on its clock)", open.Time.Format(time.RFC3339Nano), closed.Time.Format(time.RFC3339Nano))
	}
	sv.WindowUserS, sv.WindowSysS = closed.UserS-open.UserS, closed.SysS-open.SysS
	sv.WindowCPUS = sv.WindowUserS + sv.WindowSysS
	sv.UserS, sv.SysS, sv.CPUS = sv.WindowUserS, sv.WindowSysS, sv.WindowCPUS
	sv.CPUPct = sv.WindowCPUS / wall.Seconds() * 100
	if messages > 0 {
		sv.CPUPerMsgUs = sv.WindowCPUS / float64(messages) * 1e6
	}
	return sv, ""
}

// windowsDiffer says how far the agents' measured windows fail to overlap: the merged figures
// are one load's only over the time every agent was measuring. Runs are taken in order, the
// first run of every agent together, and so on.
func windowsDiffer(reps []*Report) []string {
	var out []string
	for i := range len(reps[0].Runs) {
		var start, end time.Time
		var span time.Duration
		for j, r := range reps {
			if i >= len(r.Runs) || r.Runs[i].WindowStart.IsZero() {
				return append(out, fmt.Sprintf("agent %d's run %d has no window times to compare", j+1, i+1))
			}
			w := r.Runs[i]
			if j == 0 || w.WindowStart.After(start) {
				start = w.WindowStart
			}
			if j == 0 || w.WindowEnd.Before(end) {
				end = w.WindowEnd
			}
			span = max(span, w.WindowEnd.Sub(w.WindowStart))
		}
		overlap := max(end.Sub(start), 0)
		if span > 0 && overlap < span*99/100 {
			out = append(out, fmt.Sprintf("run %d: the agents' windows overlap for %v of %v (%.0f %%); start them together with -start-at",
				i+1, overlap.Round(time.Millisecond), span.Round(time.Millisecond), 100*float64(overlap)/float64(span)))
		}
	}
	return out
}

// settingsDiffer lists the settings in which an agent's report differs from the first one's,
// leaving out what is each agent's own (its target address, its server binary).
func settingsDiffer(reps []*Report) []string {
	norm := func(s Settings) Settings {
		s.Addr, s.ServerBinary, s.ServerSelf = "", "", false
		return s
	}
	first := norm(reps[0].Settings)
	ft := reflect.TypeOf(first)
	var out []string
	for i, r := range reps[1:] {
		other := norm(r.Settings)
		fv, ov := reflect.ValueOf(first), reflect.ValueOf(other)
		for j := range ft.NumField() {
			if !reflect.DeepEqual(fv.Field(j).Interface(), ov.Field(j).Interface()) {
				out = append(out, fmt.Sprintf("agent %d's %s is %v, agent 1's %v", i+2, ft.Field(j).Tag.Get("json"), ov.Field(j).Interface(), fv.Field(j).Interface()))
			}
		}
	}
	return out
}
