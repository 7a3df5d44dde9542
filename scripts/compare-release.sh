#!/usr/bin/env bash
# Compares this tree against an earlier release in one run on one machine:
# the two binaries interleaved (ingest twice each, queries, verify twice
# each), each on a fresh store. Absolute figures drift between days; the
# ratios in one run are what to compare.
#
#   scripts/compare-release.sh <git revision of the earlier release>
set -euo pipefail
rev=${1:?usage: scripts/compare-release.sh <git revision>}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git worktree add -q --detach "$work/old-src" "$rev"
(cd "$work/old-src" && go build -o "$work/custos-old" ./cmd/custos)
git worktree remove --force "$work/old-src"
go build -o "$work/custos-new" ./cmd/custos
for round in 1 2; do
  for v in old new; do
    echo "== ingest $v round $round"
    "$work/custos-$v" bench --duration 20s --batch 500 --concurrency 32 --baseline=false 2>/dev/null | grep -E '^http'
  done
done
for v in old new; do
  echo "== query $v"
  "$work/custos-$v" bench --mode query --preload 300000 --data "$work/q-$v" --duration 15s 2>/dev/null | grep -E '^(query|preload)'
done
for round in 1 2; do
  for v in old new; do
    echo "== verify $v round $round"
    /usr/bin/time -f 'wall %e s, peak RSS %M KB' "$work/custos-$v" verify --data "$work/q-$v" --quiet 2>&1 | grep -E 'OK|FAILED|wall'
  done
done
