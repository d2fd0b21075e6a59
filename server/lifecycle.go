package server

import "sync"

// Lifecycle is the stop bookkeeping every model needs: Close may be called many times and from
// many goroutines, Wait returns once the server has stopped, and the first fatal error is kept.
// A model embeds it, calls Stopped once its serving goroutines or threads have all exited, and
// implements its own Close as "signal the loops, then Wait".
type Lifecycle struct {
	once    sync.Once
	closing chan struct{}
	stopped chan struct{}
	mu      sync.Mutex
	err     error
}

func (l *Lifecycle) init() {
	l.once.Do(func() {
		l.closing = make(chan struct{})
		l.stopped = make(chan struct{})
	})
}

// Closing is closed when the server has been asked to stop, by Close or by a fatal error.
func (l *Lifecycle) Closing() <-chan struct{} { l.init(); return l.closing }

// IsClosing reports whether the server has been asked to stop.
func (l *Lifecycle) IsClosing() bool {
	select {
	case <-l.Closing():
		return true
	default:
		return false
	}
}

// BeginClose marks the server as stopping and reports whether this call was the first to do so;
// only the first caller should tear the server down.
func (l *Lifecycle) BeginClose() (first bool) {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closing:
		return false
	default:
		close(l.closing)
		return true
	}
}

// Fail records a fatal error (the first one wins) and marks the server as stopping.
func (l *Lifecycle) Fail(err error) (first bool) {
	l.init()
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	return l.BeginClose()
}

// Stopped marks the server as fully stopped: every goroutine, thread and fd it owned is gone.
func (l *Lifecycle) Stopped() {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.stopped:
	default:
		close(l.stopped)
	}
}

// Wait blocks until Stopped and returns the fatal error, if any.
func (l *Lifecycle) Wait() error {
	l.init()
	<-l.stopped
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
