#!/usr/bin/env bash
# The GPU box, measured in one command: CUDA checks, learner samples/s, raw emulator SPS (R1, Rk),
# end-to-end training SPS and where its time goes, within a deadline (under 8 minutes).
#
#   scripts/gpu_check.sh [--quick] [--device auto|cuda|cpu] [--budget SECONDS] OUT_DIR
#
# The same as `pokerl-bench gpu` (src/pokerl/bench/gpu.py says what each figure is). It writes
# OUT_DIR/gpu_check.json after each stage and OUT_DIR/gpu_check.log, prints a table, and prints
# the JSON as its last line. Uses $PYTHON, else the `python` on PATH (an activated venv with pokerl).
set -euo pipefail
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
if ! "$PYTHON" -c "import pokerl" 2>/dev/null; then
  echo "gpu_check.sh: pokerl is not installed for $PYTHON (README.md, 'GPU machines', says how)" >&2
  exit 2
fi
exec "$PYTHON" -m pokerl.cli.bench gpu "$@"
