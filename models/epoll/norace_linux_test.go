//go:build !race

package epoll_test

// raceMemoryFactor scales memory bounds under the race detector; without it, nothing to scale.
const raceMemoryFactor = 1
