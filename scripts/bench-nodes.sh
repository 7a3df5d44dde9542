#!/usr/bin/env bash
# Measures N custos serve nodes sharing one PostgreSQL database: starts the
# nodes on a fresh database, loads each with its own custos bench client
# (32/N clients each, batches of 500, 30 s), prints each client's rate, stops
# the nodes and verifies the ledger.
#
#   go build -o custos ./cmd/custos && scripts/bench-nodes.sh 1 && scripts/bench-nodes.sh 2
#
# PGHOST etc. follow libpq; the database custos_nodes_N is dropped and created.
set -euo pipefail
n=${1:?usage: bench-nodes.sh N}
bin=${CUSTOS_BIN:-./custos}
pgurl=${PGURL:-postgres://postgres@127.0.0.1:5432}
dbname=custos_nodes_$n
psql "$pgurl/test" -qc "DROP DATABASE IF EXISTS $dbname" -c "CREATE DATABASE $dbname"
db="$pgurl/$dbname?sslmode=disable"
work=$(mktemp -d)
token=bench-admin-token-$RANDOM$RANDOM
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
for i in $(seq 1 "$n"); do
  CUSTOS_BOOTSTRAP_TOKEN=$token "$bin" serve --db "$db" --data "$work/d$i" --key-file "$work/shared.key" \
    --addr "127.0.0.1:1909$i" --log-level warn 2>"$work/serve$i.log" &
  pids+=($!)
  sleep 1
done
clients=()
for i in $(seq 1 "$n"); do
  "$bin" bench --url "http://127.0.0.1:1909$i" --token "$token" --duration 30s --batch 500 \
    --concurrency $((32 / n)) --baseline=false >"$work/bench$i.out" 2>&1 &
  clients+=($!)
done
wait "${clients[@]}"
grep -h '^http' "$work"/bench*.out
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
"$bin" verify --db "$db" --key-file "$work/shared.key" --quiet
