#!/usr/bin/env bash
# taskq quick start: build taskq, put it on the PATH, and run the main job once on a
# local SQLite file.
#
#   ./examples/quickstart.sh          (from any directory; Debian 12 with Swift 6)
#
# 1. Installs with apt-get what is missing (as root, or through sudo): libsqlite3-dev,
#    the SQLite taskq is built against, and the sqlite3 shell, to look at the file.
#    (PostgreSQL queues need libpq5 at run time only, loaded when one is opened.)
# 2. Builds the release binary: swift build -c release --static-swift-stdlib --product taskq
#    (the Swift runtime linked in: taskq starts in a few milliseconds)
# 3. Installs it as /usr/local/bin/taskq when that directory is writable, else as
#    ~/.local/bin/taskq, and says which.
# 4. In a fresh demo directory (printed; set TASKQ_DEMO_DIR to choose it): writes
#    a shell handler and 20 text files, enqueues 20 word-count tasks (10 one by one,
#    10 with --batch), starts `taskq supervise --workers 4` in the background,
#    waits for the last task's result, prints `taskq status`, stops the supervisor
#    with `taskq stop --wait`, and shows every row with sqlite3.
#
# Exits non-zero if any step fails, or if any task did not succeed with the
# expected word count.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages ------------------------------------------------------
need=()
if ! pkg-config --exists sqlite3 2>/dev/null && [ ! -e /usr/include/sqlite3.h ]; then need+=(libsqlite3-dev); fi
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get: install them with your package manager"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=(env DEBIAN_FRONTEND=noninteractive)
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
  else
    die "missing ${need[*]}: run this script as root or install sudo"
  fi
  step "installing ${need[*]} with apt-get"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq "${need[@]}"
fi
command -v swift >/dev/null 2>&1 || die "swift is not on the PATH: install Swift 6 (https://www.swift.org/install/linux/)"

# --- 2. build ----------------------------------------------------------------
step "building taskq (swift build -c release --static-swift-stdlib --product taskq) in $repo"
(cd "$repo" && swift build -c release --static-swift-stdlib --product taskq)
bin_path=$(cd "$repo" && swift build -c release --static-swift-stdlib --show-bin-path)
[ -x "$bin_path/taskq" ] || die "the build did not produce $bin_path/taskq"

# --- 3. install ---------------------------------------------------------------
if [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
  dest=/usr/local/bin
else
  dest="$HOME/.local/bin"
  mkdir -p "$dest"
fi
install -m 0755 "$bin_path/taskq" "$dest/taskq"
step "installed $dest/taskq ($("$dest/taskq" --version))"
case ":$PATH:" in
  *":$dest:"*) ;;
  *) echo "note: $dest is not on your PATH; add it with: export PATH=\"$dest:\$PATH\""
     export PATH="$dest:$PATH" ;;
esac
[ "$(command -v taskq)" = "$dest/taskq" ] || echo "note: 'taskq' on your PATH is $(command -v taskq), not $dest/taskq"
taskq() { "$dest/taskq" "$@"; }

# --- 4. the main job -----------------------------------------------------------
demo=${TASKQ_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/taskq-demo.XXXXXX")}
mkdir -p "$demo"
cd "$demo"
[ ! -e taskq.db ] || die "$demo already holds a taskq.db; choose an empty TASKQ_DEMO_DIR"
unset TASKQ_DB   # use ./taskq.db in the demo directory
step "demo directory: $demo"

# The handler: payload {"file": PATH} on stdin, the word count as JSON on stdout.
cp "$repo/examples/shell/wordcount.sh" wordcount.sh
chmod +x wordcount.sh
mkdir -p docs
for i in $(seq 1 20); do
  seq 1 $((i * 5)) | tr '\n' ' ' > "docs/doc-$i.txt"   # doc-i.txt holds 5*i words
done

step "enqueueing 10 tasks one by one, then 10 in one --batch transaction"
for i in $(seq 1 10); do
  printf 'taskq enqueue wordcount {"file":"docs/doc-%s.txt"} -> id %s\n' "$i" \
    "$(taskq enqueue wordcount "{\"file\":\"docs/doc-$i.txt\"}")"
done
ids=$(for i in $(seq 11 20); do printf '{"kind":"wordcount","payload":{"file":"docs/doc-%s.txt"}}\n' "$i"; done \
      | taskq enqueue --batch)
echo "taskq enqueue --batch -> ids $(echo $ids)"
last=$(printf '%s\n' "$ids" | tail -n 1)

step "taskq supervise --workers 4 --handler wordcount=./wordcount.sh &   (log: $demo/supervisor.log)"
taskq supervise --workers 4 --handler wordcount=./wordcount.sh > supervisor.log 2>&1 &
supervisor=$!
cleanup() {
  status=$?
  if kill -0 "$supervisor" 2>/dev/null; then
    kill -TERM "$supervisor" 2>/dev/null || true
    wait "$supervisor" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "quickstart failed (exit $status); supervisor log:" >&2
    cat "$demo/supervisor.log" >&2 2>/dev/null || true
  fi
}
trap cleanup EXIT

step "taskq result $last --wait --timeout 60"
taskq result "$last" --wait --timeout 60

step "taskq status"
taskq status

step "taskq stop --wait --timeout 60"
taskq stop --wait --timeout 60
sup_status=0
wait "$supervisor" || sup_status=$?
[ "$sup_status" -eq 0 ] || die "the supervisor exited with status $sup_status"
echo "supervisor exited 0"

step "sqlite3 -header -column taskq.db \"SELECT id, kind, state, attempts, result FROM tasks\""
sqlite3 -header -column taskq.db "SELECT id, kind, state, attempts, result FROM tasks"

# Check the outcome: every task succeeded once, with the right count.
good=$(sqlite3 taskq.db "SELECT count(*) FROM tasks WHERE kind = 'wordcount' AND state = 'succeeded'
  AND json_extract(result, '\$.words') = 5 * CAST(substr(json_extract(payload, '\$.file'), 10) AS INTEGER)")
[ "$good" -eq 20 ] || die "expected 20 correct results, found $good"

cat <<EOF

All 20 tasks succeeded. The queue is $demo/taskq.db; try:
  cd $demo
  taskq list
  taskq show $last
  sqlite3 taskq.db "SELECT state, count(*) FROM tasks GROUP BY state"
EOF
