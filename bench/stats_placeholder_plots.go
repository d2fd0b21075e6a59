package bench

// TEMPORARY: the runner's bench/rows.go and bench/matrix.go provide CRefName and Headline; these
// stand-ins exist only so the plots branch compiles on its own. The coordinator deletes this file
// at merge.

// CRefName is the row of the C reference server (bench/reference/), which every chart draws as
// the floor: black and dashed, so the models read against it.
const CRefName = "C-ref"

// Headline is the cell the ranked figures lead with.
const Headline = "conns=1000"
