package child

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// statsPath is the stats port's one resource.
const statsPath = "/stats"

// statsReadTimeout bounds how long the stats port waits for a request's headers, so a client
// that connects and says nothing does not hold a goroutine for good.
const statsReadTimeout = 5 * time.Second

// statsPort is echoserver -stats-addr: GET /stats answers with the same Snapshot as a stats line
// (one JSON object and a newline); any other path is 404 and any other method 405.
//
// It is a net/http server in the echoserver's own process, beside the model it reports on. That
// disturbs the measured loops little: it runs only when asked (echobench polls it every
// procstat.SampleInterval at most, slower when an answer takes long), an answer is one /proc read
// of the tree and a few hundred bytes, and its goroutine shares the process with the model as the
// signal loop already does. Its cost lands in the server's CPU figures, which is where it belongs.
type statsPort struct {
	srv  *http.Server
	done chan struct{}
}

// listenStats binds the stats port. It takes only a loopback address, whatever -allow-remote
// says: the port is for this host (a local reader, a kubectl port-forward, a sidecar), and it
// would tell the network what the server is doing.
func listenStats(addr string) (net.Listener, error) {
	if !isLoopback(addr) {
		return nil, fmt.Errorf("-stats-addr %s is not a loopback address: the stats port is for this host alone (read it here, through kubectl port-forward or a sidecar), so -allow-remote does not open it; give 127.0.0.1:PORT or [::1]:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on -stats-addr %s: %w; pick another port, or 0 for a free one", addr, err)
	}
	return ln, nil
}

// serveStats answers on ln until close, with a snapshot taken per request.
func serveStats(ln net.Listener, snapshot func() Snapshot) *statsPort {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(encodeSnapshot(snapshot()), '\n'))
	})
	p := &statsPort{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: statsReadTimeout},
		done: make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		p.srv.Serve(ln) // returns http.ErrServerClosed once close is called
	}()
	return p
}

// close shuts the port and its open connections and waits for its goroutine to end.
func (p *statsPort) close() {
	p.srv.Close()
	<-p.done
}

// FetchSnapshot gets one snapshot from an echoserver's stats port at addr (host:port).
func FetchSnapshot(ctx context.Context, client *http.Client, addr string) (Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+statsPath, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("stats port %s: %w", addr, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("stats port %s: %w; is the server running with -stats-addr %s?", addr, err, addr)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Snapshot{}, fmt.Errorf("stats port %s: GET %s: %s; is it an echoserver's -stats-addr?", addr, statsPath, resp.Status)
	}
	var s Snapshot
	// A snapshot is a few hundred bytes; maxLineBytes bounds what a stranger's port can make us read.
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxLineBytes))
	if err := dec.Decode(&s); err != nil {
		return Snapshot{}, fmt.Errorf("stats port %s: decode the snapshot: %w", addr, err)
	}
	if s.Process == nil {
		return s, errors.New("stats port " + addr + ": the snapshot has no process accounting (an echoserver older than it, or one that cannot read its /proc)")
	}
	// Drain the rest (the newline), so the connection can be reused for the next poll.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxLineBytes))
	return s, nil
}
