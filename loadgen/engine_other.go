//go:build !linux

package loadgen

import (
	"context"
	"errors"
)

// run needs epoll, timerfd and Linux socket semantics.
func run(ctx context.Context, cfg Config) (*Result, error) {
	return nil, errors.New("loadgen: the client engine needs Linux (epoll); run echobench on Linux")
}
