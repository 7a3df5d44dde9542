#!/usr/bin/env bash
# Compares this tree against an earlier release in one run on one machine,
# the two binaries alternating round by round (which one goes first swaps
# each round), each round on a fresh store:
#   - ingest, batches of 500 from 32 clients, 20 s;
#   - patient queries straight after a 300,000-event preload, 15 s;
#   - patient queries on a copy of a store preloaded once by each binary
#     and settled (its index caught up), 15 s;
#   - custos verify of that store.
# Absolute figures drift between days and with the machine's load; compare
# the two binaries within a run, over several rounds (ROUNDS, default 3).
#
#   scripts/compare-release.sh <git revision of the earlier release>
set -euo pipefail
rev=${1:?usage: scripts/compare-release.sh <git revision>}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git worktree add -q --detach "$work/old-src" "$rev"
(cd "$work/old-src" && go build -o "$work/custos-old" ./cmd/custos)
git worktree remove --force "$work/old-src"
go build -o "$work/custos-new" ./cmd/custos

order() { if (( $1 % 2 )); then echo old new; else echo new old; fi; }

for round in $(seq 1 "$rounds"); do
  for v in $(order "$round"); do
    echo "== ingest $v round $round"
    "$work/custos-$v" bench --duration 20s --batch 500 --concurrency 32 --baseline=false 2>/dev/null | grep -E '^http'
  done
done
for round in $(seq 1 "$rounds"); do
  for v in $(order "$round"); do
    echo "== queries straight after a preload, $v round $round"
    rm -rf "$work/q-$v"
    "$work/custos-$v" bench --mode query --preload 300000 --data "$work/q-$v" --duration 15s 2>/dev/null | grep -E '^query'
  done
done
# One settled store per binary: the preload, then a run that lets the
# index and the monitor catch up.
for v in old new; do
  "$work/custos-$v" bench --mode query --data "$work/q-$v" --duration 20s >/dev/null 2>&1
done
for round in $(seq 1 "$rounds"); do
  for v in $(order "$round"); do
    echo "== queries on a settled store, $v round $round"
    rm -rf "$work/c-$v" && cp -r "$work/q-$v" "$work/c-$v"
    "$work/custos-$v" bench --mode query --data "$work/c-$v" --duration 15s 2>/dev/null | grep -E '^query'
  done
done
for round in $(seq 1 "$rounds"); do
  for v in $(order "$round"); do
    echo "== verify $v round $round"
    /usr/bin/time -f 'wall %e s, peak RSS %M KB' "$work/custos-$v" verify --data "$work/q-$v" --quiet 2>&1 | grep -E 'OK|FAILED|wall'
  done
done
