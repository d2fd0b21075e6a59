package faults

import "echobench/server"

// Scenarios are every scenario, in the order the table shows them.
func Scenarios() []Scenario {
	return []Scenario{
		slowReader(), manySlowReaders(), resetStorm(), halfClose(), fdExhaustion(), select1024(),
		connectBurst(), threadCeiling(), killMidRun(), sigterm(), preforkWorker(), garbage(),
		idleCost(), churn(), exposure(), badInput(),
	}
}

// Rows are every registered model with its defaults, and the process model's prefork pool.
func Rows() []Row {
	var rows []Row
	for _, n := range server.Names() {
		rows = append(rows, Row{Name: n, Model: n})
		if n == "process" {
			rows = append(rows, Row{Name: "process/prefork", Model: n, Args: []string{"-pool=8"}})
		}
	}
	return rows
}
