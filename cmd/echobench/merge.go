package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"echobench/internal/cmdline"
	"echobench/report"
)

// runMerge is `echobench merge [-o merged.json] A.json B.json ...`: the reports of one cell run by
// several agents at once, merged exactly (report.Merge), printed in the same table as one run,
// each agent's line first, with every setting the agents disagree on as a warning.
func runMerge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("echobench merge", flag.ContinueOnError)
	out := fs.String("o", "", "write the merged report as JSON to this file")
	usage := func() {
		fmt.Fprintf(stderr, "usage: echobench merge [-o merged.json] A.json B.json ...\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := cmdline.Parse(fs, args, stderr, usage); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() < 2 {
		fmt.Fprintf(stderr, "echobench merge: give two or more reports (echobench -o files) to merge\n")
		return exitUsage
	}
	var reps []*report.Report
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "echobench merge: %v\n", err)
			return exitFail
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(stderr, "echobench merge: %s is not an echobench report: %v\n", path, err)
			return exitFail
		}
		reps = append(reps, &r)
	}
	m, differ, err := report.Merge(reps)
	if err != nil {
		fmt.Fprintf(stderr, "echobench merge: %v\n", err)
		return exitFail
	}
	for _, d := range differ {
		m.Warnings = append(m.Warnings, "the agents' settings differ: "+d)
	}
	for i, a := range m.Agents {
		fmt.Fprintf(stdout, "agent %d (%s): %.0f msgs/s, p99 %.0f µs, %d connections, %d bytes sent\n",
			i+1, fs.Arg(i), a.MsgsPerSec, a.LatencyP99us, a.ConnsEstablished, a.BytesSentTotal)
	}
	fmt.Fprintf(stdout, "merged, %d agents:\n", len(m.Agents))
	m.WriteTable(stdout)
	if *out != "" {
		if err := writeJSON(*out, m); err != nil {
			fmt.Fprintf(stderr, "echobench merge: %v\n", err)
			return exitFail
		}
	}
	// Settings that differ are said (above, as warnings): agents may carry different shares of
	// a load on purpose. An agent whose run failed makes the merge partial.
	if m.Error != "" {
		return exitFail
	}
	return exitOK
}
