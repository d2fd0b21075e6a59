//go:build poll_opt

package async

import (
	"errors"

	"echobench/server"
)

// With the poll_opt build tag gnet's poller stores a pointer to its own per-connection attachment
// in each epoll event's data, where the default poller stores the fd. This model pauses reading by
// rewriting a connection's epoll registration with the fd as data (pause_linux.go), which under
// poll_opt would hand gnet an fd where it expects a pointer and crash the loop. So the model is
// not built with that tag; it registers only to say why.
const pollOptReason = "the async model pauses reads by rewriting gnet's epoll registrations, which gnet's poll_opt poller lays out differently; build without -tags poll_opt"

func init() {
	server.Register(server.Model{
		Name:    "async",
		Summary: "gnet v2 reactor (unavailable: built with -tags poll_opt)",
		Start: func(server.Config) (server.Server, error) {
			return nil, errors.New("async: " + pollOptReason)
		},
		Available: func() error {
			return errors.New(pollOptReason)
		},
	})
}
