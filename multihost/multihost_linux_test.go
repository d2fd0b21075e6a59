package multihost

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMultihost runs one server and three agents in namespaces standing in for hosts, merges the
// agents' reports, and checks the merge against the server's own counters to the byte: merged
// messages, bytes and histogram count are the sums of the agents', and the server read and
// wrote exactly what the agents sent and received. It skips where namespaces cannot be made.
func TestMultihost(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("multihost: %v", err)
	}
	bin := os.Getenv("MULTIHOST_BIN")
	if bin == "" {
		bin = t.TempDir()
		build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/echoserver", "./cmd/echobench")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	nw, err := Build(4)
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("clean up the namespaces: %v", err)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), nw.prefix) {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	if err != nil {
		t.Skipf("multihost: cannot build the namespaces here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, nw, Options{Bin: bin, Dir: t.TempDir(), Agents: 3, Conns: 20, Duration: 2 * time.Second, Model: "epoll"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Differ {
		t.Logf("merge: %s", d)
	}
	m := res.Merged
	var table strings.Builder
	m.WriteTable(&table)
	t.Logf("the merged table (echobench merge):\n%s", table.String())
	var msgs, sent, recv uint64
	for _, r := range m.Runs {
		msgs += r.Messages
		sent += r.BytesSentTotal
		recv += r.BytesReceivedTotal
	}
	mh, err := m.HDR.Hists()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("merged: %d agents, %.0f msgs/s, %d messages, p99 %.0f µs; server read %d, wrote %d; agents sent %d, received %d",
		len(m.Agents), m.Summary.MsgsPerSec, msgs, m.Summary.LatencyP99us, res.Server.BytesIn, res.Server.BytesOut, sent, recv)
	if len(m.Agents) != 3 || m.Summary.ConnsEstablished != 60 {
		t.Errorf("merged %d agents with %d connections, want 3 and 60", len(m.Agents), m.Summary.ConnsEstablished)
	}
	if uint64(mh.Latency.TotalCount()) != msgs {
		t.Errorf("merged histogram holds %d samples, the agents echoed %d messages in their windows", mh.Latency.TotalCount(), msgs)
	}
	if m.Summary.BytesSentTotal != sent || m.Summary.BytesReceivedTotal != recv {
		t.Errorf("merged bytes %d/%d, the agents' sum %d/%d", m.Summary.BytesSentTotal, m.Summary.BytesReceivedTotal, sent, recv)
	}
	if res.Server.BytesIn != sent || res.Server.BytesOut != recv {
		t.Errorf("server read %d and wrote %d bytes; the agents sent %d and received %d", res.Server.BytesIn, res.Server.BytesOut, sent, recv)
	}
	if res.Server.Accepted != 60 {
		t.Errorf("the server accepted %d connections, want 60", res.Server.Accepted)
	}
}
