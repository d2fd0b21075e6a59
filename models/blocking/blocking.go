package blocking

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:      "blocking",
		Summary:   "a locked OS thread per connection on blocking sockets (-pool N: N threads, the rest wait in the backlog)",
		Start:     Start,
		Available: available,
	})
}
