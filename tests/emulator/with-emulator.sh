#!/usr/bin/env bash
# Runs a command with one emulator for all of it: starts tests/emulator on a
# free port, exports LIFEBOAT_EMULATOR_URL, runs "$@", stops the emulator.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${LIFEBOAT_PYTHON:-$here/../../.venv/bin/python}
log=$(mktemp)
"$python" "$here/emulator.py" --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if url=$(sed -n 's/^listening on //p' "$log") && [ -n "$url" ]; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "the emulator did not start" >&2; exit 1; fi
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$log" >&2; echo "the emulator did not start in 10 s" >&2; exit 1; }
export LIFEBOAT_EMULATOR_URL=$url
"$@"
