#!/bin/sh
# A taskq shell handler: counts the words of a file.
#
#   taskq enqueue wordcount '{"file": "notes.txt"}'
#   taskq supervise --handler wordcount=/path/to/wordcount.sh
#
# The payload (JSON) arrives on stdin and nowhere else; the task's id, kind, queue,
# attempt number and database path are in TASKQ_TASK_ID, TASKQ_KIND, TASKQ_QUEUE,
# TASKQ_ATTEMPT and TASKQ_DB. Relative paths are relative to the directory
# `taskq supervise` runs in.
#
# Exit 0: the task succeeded and everything written to stdout is its result.
# Exit non-zero: the attempt failed; the exit status and the end of stderr are
# stored as the task's last_error, and taskq retries it (with backoff) until its
# max attempts are spent. Exit 65 (bad data, as below) fails the task for good:
# no retry, since the same payload cannot do better next time.
set -eu

payload=$(cat)

# Take "file" out of the payload. jq does it properly; the sed fallback keeps this
# demo free of dependencies and handles plain paths (no quotes or backslashes).
if command -v jq >/dev/null 2>&1; then
  file=$(printf '%s' "$payload" | jq -r '.file // empty' 2>/dev/null || true)
else
  file=$(printf '%s' "$payload" | sed -n 's/.*"file"[[:space:]]*:[[:space:]]*"\([^"\\]*\)".*/\1/p')
fi
if [ -z "$file" ]; then
  echo "payload has no \"file\": $payload" >&2
  exit 65
fi
if [ ! -r "$file" ]; then
  echo "cannot read $file" >&2
  exit 66
fi

words=$(wc -w < "$file" | tr -d ' ')
printf '{"file":"%s","words":%s,"attempt":%s}\n' "$file" "$words" "$TASKQ_ATTEMPT"
