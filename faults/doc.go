// Package faults is `make faults`: every model, each as its own echoserver process on loopback,
// put through what breaks servers — a client that never reads, a thousand of them, a storm of
// resets, half-closes, fd exhaustion, select's fd ceiling, a connect burst, the thread and
// process ceilings, a kill in the middle of a run, garbage, idle and churning clients — and a
// table, model by model, of what held and what broke, with the figure behind each cell.
//
// A cell's verdict comes from a rule stated beside its scenario and computed from what was
// measured, never written in:
//
//   - holds: the rule held;
//   - breaks: it did not, and nothing in the model's design says it should not (a bug to fix);
//   - expected limitation: it did not, in the way the model's own doc.go says it will not (select
//     cannot watch fd 1024 or above; a busy-polling loop serves everyone late when one client
//     stalls it), with the figure that shows how far;
//   - n/a: the scenario has no meaning for this model (a prefork worker where there is none).
//
// Every load is on loopback, bounded in count and time, and ends by itself; every server is a
// child this package started and stops, by pid. The Quick scale is small enough to run inside
// `make test` (the fast scenarios: half-close, a reset storm on 200 connections, bad input,
// exposure); the Full scale is `make faults`.
package faults
