// Command echoserver runs one echobench IO model as its own process.
//
//	echoserver -model epoll -addr 127.0.0.1:0
//
// The first line on stdout is the bound address. SIGINT or SIGTERM stops the server cleanly.
// echoserver -list shows the models.
package main

import (
	"os"

	_ "echobench/models/all"
	"echobench/serve"
	"echobench/server"
)

func main() {
	server.RunChildIfRequested()
	os.Exit(serve.Main(os.Args[1:], os.Stdout, os.Stderr))
}
