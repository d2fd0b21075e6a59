package measure

import "net"

// SourcesFor returns how many source addresses to spread connections to addr over: n for an IPv4
// loopback target, whose whole 127.0.0.0/8 is this machine's, and 0 (the kernel's choice) for
// any other, which 127.0.0.x could not reach or, for ::1, has no second address to use.
//
// Why spread them at all: every connection that echobench closes first leaves a TIME_WAIT socket
// for its (source, destination) pair, and on loopback the kernel lets connect(2) reuse such a
// port only a second after it was last used. With one source address and one server port, at
// most the ~14,000 even-numbered ephemeral ports connect prefers can be used per second, and
// under -reconnect every event-loop model hits that ceiling, with the load generator's core
// spent in the kernel's port search (__inet_hash_connect). 16 addresses raise the ceiling
// sixteenfold and make the search short.
func SourcesFor(addr string, n int) int {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
		return n
	}
	return 0
}
