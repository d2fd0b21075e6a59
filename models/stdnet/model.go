package stdnet

import "echobench/server"

func init() {
	server.Register(server.Model{
		Name:     "stdnet",
		Summary:  "Go standard library: net.Listen, a goroutine per connection (the baseline)",
		Start:    Start,
		StartUDP: StartUDP,
	})
}
