// Package lesson is `make lesson`: each claim of the teaching notes the suite follows
// (../shared/seeds/, Chinese), quoted with its file and line and translated, run as an experiment
// against the real models, with the figures it measured and a verdict computed from those figures
// by a stated rule, never written in by hand.
//
// An Experiment is one claim (or a group that shares its runs). Its Run starts servers and load
// through a Trial, which records every command it runs (echobench and echoserver command lines a
// reader can paste) and keeps the raw output under the run's directory. Run returns a Finding:
// the commands, the figures, and a Verdict from the experiment's judge function, a pure function of
// the figures so that the rule is unit-tested on fixed figures. Where a flag the experiment relies on
// has no effect in this build (a model that has not taken it up yet), the judge says "not measurable
// yet" instead of a verdict.
//
// Render writes the findings as docs/lesson.md. The experiments themselves run only from
// cmd/echolesson (`make lesson`), never from `go test`: they take minutes and need the machine to
// themselves.
package lesson
