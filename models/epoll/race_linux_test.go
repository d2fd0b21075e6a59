//go:build race

package epoll_test

// raceMemoryFactor scales memory bounds under the race detector, which backs every heap byte
// the program touches with shadow memory (about two more bytes per byte, plus metadata).
const raceMemoryFactor = 4
