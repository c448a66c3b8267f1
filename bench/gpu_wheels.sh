#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels that bench/gpu_check.sh needs on the GPU machine and
# that its image lacks (see the device notes: Python 3.12, torch 2.11+cu130, transformers 5.17,
# peft, accelerate, pyarrow, pandas, xxhash ... are there; nothing can be downloaded there).
#
#   bash bench/gpu_wheels.sh          # -> .whl/ (gitignored), then carry ".whl" to the GPU machine
#
# graft needs pydantic (and its compiled core); TRL's GRPOTrainer needs trl, datasets and datasets'
# dill and multiprocess. vLLM is NOT here: its CUDA wheel and dependencies are hundreds of MB, far
# over what a call may carry, so the vLLM rows of the GPU check are skipped unless the GPU machine
# already has vllm. Pins: graft's venv (pydantic) and bench/requirements.txt (trl).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5
  typing_extensions==4.16.0
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
)
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-40}
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
# one version of each package: a stale wheel of another version would stop the install there
python3 - "${WHEELS[@]}" <<'PY'
import re, sys
from pathlib import Path
want = {re.sub(r"[-_.]+", "_", w.split("==")[0]).lower(): w.split("==")[1] for w in sys.argv[1:]}
for f in sorted(Path(".whl").glob("*.whl")):
    name, version = f.name.split("-")[:2]
    key = re.sub(r"[-_.]+", "_", name).lower()
    if want.get(key) != version:
        print(f"removing {f.name} (not in the list)")
        f.unlink()
PY
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s + 0}')
ls -l .whl
echo "wheels: $(( total / 1024 )) KiB; working tree that travels: $(( tree / 1024 )) KiB; together $(( (total + tree) / 1048576 )) MiB of the 64 MiB a call carries"
if (( total > LIMIT_MIB * 1048576 )); then
  echo "error: the wheels are over ${LIMIT_MIB} MiB" >&2
  exit 1
fi
