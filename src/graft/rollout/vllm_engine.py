"""vLLM as a rollout engine (``rollout.engine: vllm``).

``VllmSource`` is one more rollout source behind the interface of ``graft.rollout.sources``: it
returns the same ``Rollout`` objects as graft's own i.i.d. sampler, with vLLM's per-token
log-probabilities kept as the behaviour log-probabilities. What it does differently:

- **Where the engine lives.** One ``vllm.LLM`` in the process that samples (the training process;
  with ``distributed.backend: ray``, each rollout worker's own), built on first use from
  the run's Hugging Face model directory (config and tokenizer) in the policy's dtype, then given
  the learner's current weights. ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps vLLM's engine core
  in this process, so a weight update is a call on the model, not a copy through a socket.
- **Weights.** ``sync(policy, version)`` loads the policy's weights into the engine
  (``collective_rpc`` running the model runner's in-place ``reload_weights``, which maps Hugging
  Face names onto vLLM's fused layers) and drops the prefix cache, whose keys and values the old weights
  computed. It runs lazily, at the first ``generate`` of a new policy version, so SFT steps and
  several sampling rounds within one step cost one load. A LoRA policy sends its merged weights
  (base + B A, computed without touching the adapters: ``graft.models.lora.merged_state_dict``).
- **Memory.** On CUDA the engine takes ``rollout.vllm.gpu_memory_utilization`` of the card and,
  with ``rollout.vllm.sleep``, sleeps between rollouts (level 1: weights offloaded to host
  memory, KV cache freed) so the update has the memory; it wakes before the next rollout. The
  CPU build has no sleep mode; its KV cache is ``rollout.vllm.cpu_kv_cache_gib`` GiB.
- **Randomness.** Every completion is its own request seeded with its row key (the key graft's
  sampler draws that row's uniforms from, ``graft.rollout.rng``): a completion's tokens depend on
  its key and the weights only, not on which other requests share the batch or the worker.
- **Log-probabilities.** vLLM's ``processed_logprobs`` (after temperature) equal graft's
  ``log_softmax(logits / T)``, the convention of graft's sampler and of the update. With
  ``rl.top_p < 1`` vLLM's processed log-probs are renormalised over the nucleus, graft's are
  not: then ``raw_logprobs`` (before temperature) are used, which agree at ``rl.temperature: 1``;
  ``check_config`` refuses top-p with another temperature.
- **Stopping.** Every id of the tokenizer's ``stop_ids`` (EOS and the model's other
  end-of-sequence ids) is a vLLM stop token, and ``rl.stop`` strings are vLLM stop strings;
  the finish reason is 'stop' for a token, 'stop_string' for a string, 'length' at the budget.
  The completion's ids run to the stopping token (included, as graft's sampler does) and its
  text is graft's tokenizer's decoding of them.

Only i.i.d. sampling runs on vLLM (``rollout.strategy: iid``); hints and LUFFY's demonstration
placement (mixer revisions) go through the same engine via ``place_requests``.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

from graft.config import Config
from graft.models.policy import Policy, device_of, stop_ids
from graft.rollout.sources import IidSource
from graft.rollout.types import Rollout

_SEED_MASK = 2**63 - 1


def quiet_vllm() -> None:
    """vLLM logs at INFO by default (a screenful per engine start and weight load); graft's run log
    says what matters. ``VLLM_LOGGING_LEVEL`` set by the user wins. Must run before ``import vllm``."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def _dtype_name(cfg: Config) -> str:
    """The engine's dtype: bf16 where the update's forwards run in bf16, else float32."""
    return "bfloat16" if cfg.model.precision in ("bf16", "bf16_mixed") else "float32"


def logprobs_mode(cfg: Config) -> str:
    """vLLM's log-probability mode matching graft's behaviour log-probs (module docstring)."""
    return "processed_logprobs" if cfg.rl.top_p >= 1.0 else "raw_logprobs"


def finish_reason(vllm_reason: str | None, stop_reason: int | str | None) -> str:
    """graft's finish reason for one vLLM completion: vLLM says 'stop' for a stop token and for a
    stop string alike; its ``stop_reason`` is the string in the second case."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "stop":
        return "stop_string" if isinstance(stop_reason, str) else "stop"
    if vllm_reason == "abort":
        return "aborted"
    raise ValueError(f"vLLM finished a completion with an unknown reason {vllm_reason!r}")


@contextmanager
def _cpu_serving_env(threads: int):
    """The CPU build's process settings for in-process serving, restored afterwards: it would cut
    the process to one torch thread and replace ``torch.set_num_threads`` for good."""
    set_threads = torch.set_num_threads
    forced = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # the engine in this process: weights by reference
    defaults = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(threads)}  # the user's win
    saved = {k: os.environ.get(k) for k in (*forced, *defaults)}
    os.environ.update(forced)
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def state_for_engine(policy: Policy) -> list[tuple[str, torch.Tensor]]:
    """The policy's weights under their Hugging Face names (a LoRA policy's merged), detached."""
    from graft.models.lora import is_lora, merged_state_dict

    if is_lora(policy):
        return list(merged_state_dict(policy).items())
    return [(name, t.detach()) for name, t in policy.module.state_dict().items()]


def _load_weights(worker, weights):
    """Run inside vLLM's worker: an in-place reload, the model mapping HF names onto its own
    (fused) parameters; a loaded model's parameters no longer accept a plain ``load_weights``."""
    worker.model_runner.reload_weights(weights_iterator=iter(weights))
    return True


class VllmSource(IidSource):
    """``rollout.engine: vllm``: i.i.d. completions generated by a ``vllm.LLM`` (module docstring)."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.llm = None
        self.synced_version: int | None = None
        self.asleep = False
        self.loads = 0  # weight loads so far, and their seconds
        self.sync_time = 0.0
        # where the engine runs; None: the policy's device. A Ray rollout worker with a GPU keeps its
        # policy copy on the CPU and sets "cuda" (graft.distributed.ray_backend.RolloutWorker)
        self.engine_device: str | None = None

    @staticmethod
    def check_config(cfg: Config) -> list[str]:
        out = []
        if not cfg.model.path:
            out.append("config key 'rollout.engine': vllm needs a Hugging Face model (set model.path); "
                       "the built-in tiny transformer runs on graft's engine only")
        if cfg.rollout.strategy != "iid":
            out.append(f"config key 'rollout.engine': vllm samples i.i.d. completions only; "
                       f"rollout.strategy={cfg.rollout.strategy!r} needs rollout.engine=graft")
        if cfg.rl.top_p < 1.0 and cfg.rl.temperature != 1.0:
            out.append(f"config key 'rl.top_p': {cfg.rl.top_p} with rl.temperature={cfg.rl.temperature} "
                       "has no vLLM log-probability mode equal to graft's (tempered, not renormalised "
                       "over the nucleus); use rl.top_p=1 or rl.temperature=1 with rollout.engine=vllm")
        return out

    # ------------------------------------------------------------------ engine and weights

    def _build(self, policy: Policy):
        quiet_vllm()
        from vllm import LLM

        from graft.models.load import resolve_model_path

        cfg, vc = self.cfg, self.cfg.rollout.vllm
        device = torch.device(self.engine_device) if self.engine_device else device_of(policy)
        on_cuda = device.type == "cuda"
        kwargs = {"model": str(resolve_model_path(cfg.model.path)), "dtype": _dtype_name(cfg),
                  "seed": cfg.seed, "logprobs_mode": logprobs_mode(cfg),
                  "enforce_eager": (not on_cuda) if vc.enforce_eager is None else vc.enforce_eager,
                  "max_model_len": vc.max_model_len, "enable_prefix_caching": True, "skip_tokenizer_init": False}
        if on_cuda:
            kwargs.update(gpu_memory_utilization=vc.gpu_memory_utilization, enable_sleep_mode=vc.sleep)
        else:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(vc.cpu_kv_cache_gib))
        with _cpu_serving_env(torch.get_num_threads()):
            self.llm = LLM(**kwargs)
        self.sleeps = on_cuda and vc.sleep

    def sync(self, policy: Policy, version: int) -> bool:
        """Give the engine ``policy``'s weights if it has not got ``version`` yet; True if loaded."""
        if self.llm is None:
            self._build(policy)
        if self.synced_version == version:
            return False
        t0 = time.perf_counter()
        self._wake()
        weights = state_for_engine(policy)
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()  # its keys and values came from the old weights
        self.synced_version = version
        self.loads += 1
        self.sync_time += time.perf_counter() - t0
        return True

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def _sleep(self) -> None:
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    # ------------------------------------------------------------------ sampling

    def generate(self, policy: Policy, requests, version: int):
        """``IidSource.generate`` on the engine; its report counts the weight loads it took
        (``rollout/weight_loads``) and their time (``perf/weight_sync_s``); no prefill time (the
        engine's steps mix prefill and decode)."""
        loads, spent = self.loads, self.sync_time
        groups, report = super().generate(policy, requests, version)
        report.prefill_time = None
        report.counters["rollout/weight_loads"] = float(self.loads - loads)
        report.counters["perf/weight_sync_s"] = self.sync_time - spent
        return groups, report

    def sample_rows(self, policy: Policy, prompts: list[list[int]], counts: list[int], keys: list[int], version,
                    max_new_tokens: int | None = None, stop_context: list[list[int]] | None = None,
                    clock: dict[str, float] | None = None) -> list[Rollout]:
        """``counts[i]`` completions of token prompt ``i``, one vLLM request each, seeded with its row
        key (``graft.rollout.rng``; the key's low 63 bits, vLLM takes a non-negative int).
        ``stop_context`` is not seen by vLLM's stop strings (it checks the generated text only);
        ``clock`` is not filled (vLLM does not time its prefill apart)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        cfg, tok = self.cfg, policy.tokenizer
        self.sync(policy, version)
        self._wake()
        rows = [p for p, n in zip(prompts, counts) for _ in range(n)]
        seeds = [k & _SEED_MASK for k in keys]
        budget = max_new_tokens or cfg.rl.max_new_tokens
        params = [SamplingParams(n=1, temperature=cfg.rl.temperature, top_p=cfg.rl.top_p, max_tokens=budget,
                                 logprobs=0, seed=int(s), stop_token_ids=list(stop_ids(tok)),
                                 stop=list(cfg.rl.stop) or None, skip_special_tokens=False)
                  for s in seeds]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in rows], params,
                                    use_tqdm=False)
        self._sleep()
        out = []
        for prompt, key, o in zip(rows, keys, outputs):
            c = o.outputs[0]
            ids = list(c.token_ids)
            logprobs = [float(step[t].logprob) for step, t in zip(c.logprobs, ids)]
            out.append(Rollout(prompt_ids=list(prompt), completion_ids=ids, logprobs=logprobs,
                               policy_version=version, finish_reason=finish_reason(c.finish_reason, c.stop_reason),
                               text=tok.decode(ids), key=key))
        return out

    def close(self) -> None:
        """Free the engine (tests build several in one process)."""
        if self.llm is not None:
            import gc

            del self.llm
            self.llm = None
            gc.collect()
