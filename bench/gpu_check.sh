#!/usr/bin/env bash
# The GPU check (issue 13) in one command, on a machine with one CUDA GPU; about 9 minutes on an H200.
#
#   bash bench/gpu_check.sh            # full: pytest -m gpu, the quickstart on CUDA, the RL-step bench
#   bash bench/gpu_check.sh --quick    # about 5 minutes: fewer steps, a shortened quickstart
#   (any other option goes to bench/gpu_bench.py: --phases, --sides, --budget, --precision ...)
#
# Installs what the machine lacks from .whl/ when that folder holds wheels (bench/gpu_wheels.sh
# downloads them beforehand on a machine with PyPI) into a private folder put on PYTHONPATH, and
# graft itself from this checkout (src/ first on PYTHONPATH; nothing is installed into the system).
# Writes bench/results/gpu_check.json and .md, and copies both into $OUT when that is set (the
# device tool brings back only what is under $OUT). Each phase has its own time limit inside the
# run's budget (bench/gpu_bench.py); this script stops the whole after GPU_CHECK_TIMEOUT seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  site=${GPU_CHECK_SITE:-/tmp/graft-gpu-site}
  echo "installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
    || { echo "error: installing .whl/ failed" >&2; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null || true
timeout -k 10 "${GPU_CHECK_TIMEOUT:-570}" "$PY" bench/gpu_bench.py --device cuda "$@"
rc=$?
[ "$rc" = 124 ] && echo "gpu_check.sh: stopped after ${GPU_CHECK_TIMEOUT:-570} s; the JSON holds the phases done so far"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp bench/results/gpu_check.json bench/results/gpu_check.md "$OUT"/ 2>/dev/null && echo "copied the results into \$OUT"
fi
echo "gpu_check.sh: exit status $rc after $(( $(date +%s) - start )) s"
exit "$rc"
