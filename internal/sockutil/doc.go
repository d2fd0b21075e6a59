// Package sockutil holds the socket plumbing that the raw-syscall models share, so that each
// model's files show only its own idea: opening a listening TCP socket from a "host:port" string
// (IPv4, IPv6, or ":port" for every address of both families), sorting the errors accept(2) can
// return into those to retry at once and those that last until some connection closes, reading a
// socket past EINTR, and rate-limiting the log of a condition that repeats in bursts.
//
// It is not a model and serves no connection; models/blocking, models/nonblocking,
// models/select, models/epoll and models/process import it, and no model imports another. The socket and errno code is Linux's;
// LogBurst is portable.
package sockutil
