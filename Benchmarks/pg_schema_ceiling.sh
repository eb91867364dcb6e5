#!/usr/bin/env bash
# What taskq's table costs an insert on PostgreSQL: W1 (one commit per task) and W1b
# (commits of 100) four ways, alternating, medians of REPS:
#   limit  the harness limit's table (id, state, payload, result; two indexes), one
#          prepared INSERT per commit (pgbench, as limit_pg does)
#   table  taskq's own tasks table (its CHECKs, on the table and on its columns'
#          domains, insert trigger and five indexes),
#          written by one plain prepared INSERT per commit (pgbench): the most any
#          producer on this schema can do
#   nochk  the same table with every CHECK constraint dropped (what they cost)
#   taskq  `taskq enqueue --lines [--commit-every 100]` on taskq's table
#
#   Benchmarks/pg_schema_ceiling.sh URL [REPS] [N]
#
# URL: a database where it may create and drop the schemas taskq_ceiling_limit,
# taskq_ceiling_taskq and taskq_ceiling_nochk (a private server: ../shared/bench/pg/cluster.sh start DIR).
# N tasks per W1 cell (default 5,000; W1b inserts 20 times as many).
# Needs pgbench and psql (Debian: postgresql-15, postgresql-client-15) and the
# release taskq (swift build -c release --static-swift-stdlib --product taskq).
set -euo pipefail
url=${1:?usage: pg_schema_ceiling.sh URL [REPS] [N]}
reps=${2:-3}
n=${3:-5000}
here=$(cd "$(dirname "$0")/.." && pwd)
taskq=${TASKQ:-$here/.build/release/taskq}
PATH=$PATH:/usr/lib/postgresql/15/bin
for tool in pgbench psql "$taskq"; do
    command -v "$tool" >/dev/null || { echo "pg_schema_ceiling: $tool not found" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql "$url" -qc "DROP SCHEMA IF EXISTS taskq_ceiling_limit CASCADE; DROP SCHEMA IF EXISTS taskq_ceiling_taskq CASCADE; DROP SCHEMA IF EXISTS taskq_ceiling_nochk CASCADE" >/dev/null 2>&1 || true' EXIT

# ~100-byte JSON payloads, as the harness's
pad=$(printf 'x%.0s' $(seq 60))
payload="{\"seq\":1,\"enq_ns\":0,\"pad\":\"$pad\"}"
for i in $(seq "$n"); do echo "{\"seq\":$i,\"enq_ns\":0,\"pad\":\"$pad\"}"; done > "$tmp/lines1"
for i in $(seq 20); do cat "$tmp/lines1"; done > "$tmp/lines100"
values() {  # one INSERT of $1 rows $3 into $2 (a table and its columns)
    local row=$3 sql="INSERT INTO $2 VALUES "
    for i in $(seq "$1"); do sql+="$row"; [ "$i" -lt "$1" ] && sql+=","; done
    echo "$sql;"
}
limit_row="('$payload')"
table_row="('bench-noop', 'default', 0, '$payload', 3, now())"
values 1 "t(payload)" "$limit_row" > "$tmp/limit1.sql"
values 100 "t(payload)" "$limit_row" > "$tmp/limit100.sql"
values 1 "tasks(kind, queue, priority, payload, max_attempts, created_at)" "$table_row" > "$tmp/table1.sql"
values 100 "tasks(kind, queue, priority, payload, max_attempts, created_at)" "$table_row" > "$tmp/table100.sql"

fresh() {  # empty schemas: the limit's table, and taskq's
    psql "$url" -q >/dev/null <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS taskq_ceiling_limit CASCADE; CREATE SCHEMA taskq_ceiling_limit;
CREATE TABLE taskq_ceiling_limit.t(id bigserial PRIMARY KEY, state int NOT NULL DEFAULT 0, payload text NOT NULL, result int);
CREATE INDEX t_ready ON taskq_ceiling_limit.t(id) WHERE state = 0;
DROP SCHEMA IF EXISTS taskq_ceiling_taskq CASCADE; CREATE SCHEMA taskq_ceiling_taskq;
DROP SCHEMA IF EXISTS taskq_ceiling_nochk CASCADE; CREATE SCHEMA taskq_ceiling_nochk;
SQL
    PGOPTIONS="-c search_path=taskq_ceiling_taskq" "$taskq" init --db "$url" >/dev/null
    PGOPTIONS="-c search_path=taskq_ceiling_nochk" "$taskq" init --db "$url" >/dev/null
    psql "$url" -q >/dev/null <<'SQL'
DO $$ DECLARE c record; BEGIN
  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'taskq_ceiling_nochk.tasks'::regclass AND contype = 'c' LOOP
    EXECUTE format('ALTER TABLE taskq_ceiling_nochk.tasks DROP CONSTRAINT %I', c.conname);
  END LOOP;
  FOR c IN SELECT t.typname, k.conname FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid
           WHERE t.typnamespace = 'taskq_ceiling_nochk'::regnamespace LOOP
    EXECUTE format('ALTER DOMAIN taskq_ceiling_nochk.%I DROP CONSTRAINT %I', c.typname, c.conname);
  END LOOP;
END $$;
SQL
}
# tasks/s of pgbench running script $2 (rows per commit $3) in schema $1
bench() {
    local tps
    tps=$(PGOPTIONS="-c search_path=$1 -c taskq.writer=taskq" pgbench -n -M prepared -t "$4" -f "$2" "$url" 2>&1 |
          awk '/^tps/ {print $3}')
    awk -v t="$tps" -v k="$3" 'BEGIN { printf "%.0f", t * k }'
}
run_taskq() {  # tasks/s of taskq enqueue --lines, $1 rows per commit
    local out
    out=$(PGOPTIONS="-c search_path=taskq_ceiling_taskq" "$taskq" enqueue bench-noop --lines --commit-every "$1" --quiet \
          --report --db "$url" < "$tmp/lines$1")
    echo "$out" | awk -F'[:,}]' '{ printf "%.0f", $2 / $4 }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for r in $(seq "$reps"); do
    fresh
    echo "W1 limit $(bench taskq_ceiling_limit "$tmp/limit1.sql" 1 "$n")" >> "$tmp/results"
    echo "W1 table $(bench taskq_ceiling_taskq "$tmp/table1.sql" 1 "$n")" >> "$tmp/results"
    echo "W1 nochk $(bench taskq_ceiling_nochk "$tmp/table1.sql" 1 "$n")" >> "$tmp/results"
    echo "W1 taskq $(run_taskq 1)" >> "$tmp/results"
    echo "W1b limit $(bench taskq_ceiling_limit "$tmp/limit100.sql" 100 "$n")" >> "$tmp/results"
    echo "W1b table $(bench taskq_ceiling_taskq "$tmp/table100.sql" 100 "$n")" >> "$tmp/results"
    echo "W1b nochk $(bench taskq_ceiling_nochk "$tmp/table100.sql" 100 "$n")" >> "$tmp/results"
    echo "W1b taskq $(run_taskq 100)" >> "$tmp/results"
done
echo "# pg_schema_ceiling: $reps reps, W1 $n tasks, W1b $((n * 20)) tasks; tasks/s, medians (every rep)"
for w in W1 W1b; do
    l=$(awk -v w=$w '$1 == w && $2 == "limit" {print $3}' "$tmp/results" | median)
    for who in limit table nochk taskq; do
        all=$(awk -v w=$w -v x=$who '$1 == w && $2 == x {print $3}' "$tmp/results" | paste -sd' ')
        m=$(awk -v w=$w -v x=$who '$1 == w && $2 == x {print $3}' "$tmp/results" | median)
        awk -v w=$w -v x=$who -v m="$m" -v l="$l" -v all="$all" \
            'BEGIN { printf "%-4s %-6s %8d  %4.0f%% of the limit   (%s)\n", w, x, m, 100 * m / l, all }'
    done
done
