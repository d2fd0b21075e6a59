package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"echobench/loadgen"
)

// checkLoopback refuses an address outside this machine, given to flag (-addr, -server-stats).
// echobench floods what it aims at, so pointing it at another host must be a deliberate choice
// (-allow-remote), never a typo; a stats port it polls follows the same rule, so one flag says
// "this run may reach off the host".
func checkLoopback(ctx context.Context, flag, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w; write host:port, such as 127.0.0.1:7000", flag, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%s %q has no host; write 127.0.0.1:PORT", flag, addr)
	}
	refuse := func(what string) error {
		return fmt.Errorf("refusing %s %s: %s is not a loopback address (127.0.0.0/8 or ::1); echobench only aims at this machine unless you pass -allow-remote", flag, addr, what)
	}
	// A zone ("::1%lo") is part of an IPv6 literal, not of the address.
	literal, _, _ := strings.Cut(host, "%")
	if ip := net.ParseIP(literal); ip != nil {
		if !ip.IsLoopback() {
			return refuse(host)
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s host %q: %w", flag, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s host %q: no addresses", flag, host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return refuse(fmt.Sprintf("%s (resolves to %s)", host, a.IP))
		}
	}
	return nil
}

// maxSizes bounds how many sizes a range expands to; powers of two from 1 byte to the engine's
// 1 GiB limit are 31, so this is only a guard against a mistyped list.
const maxSizes = 64

// parseSizes reads -size: one size ("64"), a list ("64,1500"), or a range ("64-4096"), which
// becomes its two ends and every power of two between them (64,128,...,4096): sizes spread
// evenly on the log scale on which per-message and per-byte costs trade places.
//
// With udp a size may be 0: an empty datagram is a datagram, and is echoed.
func parseSizes(s string, udp bool) ([]int, error) {
	atoi := func(t string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(t))
		switch {
		case err != nil || n < 0:
			return 0, fmt.Errorf("-size %q: %q is not a byte count", s, t)
		case n == 0 && !udp:
			return 0, fmt.Errorf("-size %q: %q is not a positive byte count (an empty message is UDP's alone: -udp)", s, t)
		}
		return n, nil
	}
	if lo, hi, isRange := strings.Cut(s, "-"); isRange {
		a, err := atoi(lo)
		if err != nil {
			return nil, err
		}
		b, err := atoi(hi)
		if err != nil {
			return nil, err
		}
		if b < a {
			return nil, fmt.Errorf("-size %q: range ends below its start", s)
		}
		sizes := []int{a}
		p := 1
		for p <= a {
			p *= 2
		}
		for ; p < b; p *= 2 {
			sizes = append(sizes, p)
		}
		if b != a {
			sizes = append(sizes, b)
		}
		return sizes, nil
	}
	var sizes []int
	for part := range strings.SplitSeq(s, ",") {
		n, err := atoi(part)
		if err != nil {
			return nil, err
		}
		sizes = append(sizes, n)
		if len(sizes) > maxSizes {
			return nil, fmt.Errorf("-size %q: more than %d sizes", s, maxSizes)
		}
	}
	return sizes, nil
}

// checkUDPSizes refuses sizes that one datagram to the target cannot carry: 65,507 bytes over
// IPv4, 65,527 over IPv6 (loadgen.CheckUDPSize says why). A -model child listens on 127.0.0.1, so
// only an -addr with an IPv6 host gets the larger limit.
func checkUDPSizes(sizes []int, addr string) error {
	ipv4 := true
	if host, _, err := net.SplitHostPort(addr); err == nil {
		literal, _, _ := strings.Cut(host, "%")
		if ip := net.ParseIP(literal); ip != nil && ip.To4() == nil {
			ipv4 = false
		}
	}
	for _, n := range sizes {
		if err := loadgen.CheckUDPSize(n, ipv4); err != nil {
			return fmt.Errorf("-size: %w", err)
		}
	}
	return nil
}
