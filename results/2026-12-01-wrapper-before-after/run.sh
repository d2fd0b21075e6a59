#!/usr/bin/env bash
# Same-run comparison: one meter binary (the pre-change echobench), server binaries before and after.
# Usage: run.sh OUTDIR REPEATS  (expects /tmp/before/echoserver and /tmp/after/echoserver)
set -euo pipefail
out=$1; reps=${2:-5}
mkdir -p "$out"
meter=/tmp/before/echobench
for r in $(seq 1 "$reps"); do
  if (( r % 2 )); then order="before after"; else order="after before"; fi
  for m in select nonblocking; do
    for v in $order; do
      for mode in closed open30k; do
        extra=""; [[ $mode == open30k ]] && extra="-rate 30000"
        f="$out/$m-$v-$mode-$r.json"
        $meter -model $m -server-bin /tmp/$v/echoserver -c 1000 -size 64 -d 5s -warmup 2s $extra -o "$f" >/dev/null 2>>"$out/stderr.log" || echo "run $f failed" >&2
      done
    done
  done
done
