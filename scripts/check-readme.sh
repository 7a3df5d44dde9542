#!/usr/bin/env bash
# Runs the README's tour and walkthroughs as a newcomer pastes them: every
# ```sh block that follows the marker line, in order, in one bash, from a
# scratch copy of the repository's root. Fails on the first failing command.
#
#   scripts/check-readme.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
marker='<!-- checked by scripts/check-readme.sh: runs as pasted -->'
script=$(awk -v m="$marker" '$0 == m {want=1; next} want && /^```sh$/ {inblock=1; want=0; next} inblock && /^```$/ {inblock=0; next} inblock' "$root/README.md")
if [ -z "$script" ]; then echo "check-readme: no marked blocks" >&2; exit 1; fi
if curl -sf localhost:8080/readyz >/dev/null 2>&1; then echo "check-readme: port 8080 is taken" >&2; exit 1; fi
cd "$root"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$root/custos"' EXIT
bash -euo pipefail -c "$script" > /tmp/check-readme.out 2>&1 || { echo "check-readme: FAILED; output:" >&2; tail -40 /tmp/check-readme.out >&2; exit 1; }
grep -q '"allowed":false' /tmp/check-readme.out
grep -q 'OK: ' /tmp/check-readme.out
echo "check-readme: the tour and walkthroughs ran as pasted"
