"""The one typed config of a run.

Every hyperparameter lives here, documented where it is declared. A run's
config comes from a YAML file plus ``--set dotted.key=value`` overrides; it is
validated up front (unknown keys and wrong types are rejected with the key's
dotted name) and saved, fully resolved, in the run directory and with every
checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graft.errors import GraftError


class ConfigError(GraftError):
    """A config problem, phrased for a user: names the key and what was expected."""


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


LORA_TARGETS_DEFAULT = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""The attention and MLP projections of Qwen2 / Llama / Mistral (their module names)."""


class LoraConfig(_Section):
    """LoRA adapters through `peft` (docs/models.md): the base model's weights stay frozen and only
    the low-rank adapters train; the KL reference is the base model with adapters disabled."""

    rank: int = Field(0, ge=0)
    """Adapter rank r; 0 = off (full fine-tuning). > 0 needs a Hugging Face model (model.path)."""
    alpha: float = Field(16.0, gt=0)
    """LoRA alpha: adapter output scaled by alpha / rank."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapters' input in training mode (sampling runs in eval mode, so > 0 makes
    the PPO ratio start away from 1)."""
    target_modules: list[str] = Field(default_factory=lambda: list(LORA_TARGETS_DEFAULT))
    """Names (suffixes) of the linear layers that get adapters."""


class ModelConfig(_Section):
    path: str | None = None
    """Hugging Face causal-LM directory (config, weights, tokenizer), or a repo id already in the local
    Hugging Face cache (never downloaded). None = built-in tiny transformer."""
    device: str = "auto"
    """Where the policy and every tensor of the loop live: `auto` (CUDA when present, else CPU), `cpu`,
    `cuda` or `cuda:N`."""
    precision: Literal["fp32", "bf16_mixed", "bf16"] = "fp32"
    """`fp32`; `bf16_mixed`: bf16 autocast for forwards, fp32 weights and optimizer state; `bf16`:
    weights (and so optimizer state) in bf16. HF models load in this dtype and save back in it."""
    lora: LoraConfig = LoraConfig()

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError("expected auto, cpu, cuda or cuda:<index>")
        return value
    d_model: int = Field(128, ge=8)
    """Tiny transformer: embedding width."""
    n_layers: int = Field(4, ge=1)
    """Tiny transformer: number of blocks."""
    n_heads: int = Field(4, ge=1)
    """Tiny transformer: attention heads (d_model must be divisible by it)."""
    max_seq_len: int = Field(256, ge=8)
    """Tiny transformer: longest prompt + completion it will see."""

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class TaskConfig(_Section):
    name: str = "arithmetic"
    """Registered task (see `graft list`), or a plug-in Task class by import path, `package.module:Class`
    (looked up on sys.path, then in the current directory; docs/tasks.md)."""
    path: str | None = None
    """Data for file-based tasks: `jsonl` (prompt, answer[, demonstration] per line) or `dataset` (.jsonl, .csv,
    .parquet, a datasets.save_to_disk directory, or graft:data/... for the shipped examples)."""
    difficulty: int = Field(2, ge=1)
    """Task difficulty knob (arithmetic: digits per operand; countdown: how many numbers)."""
    num_train: int = Field(10000, ge=1)
    """Training examples generated."""
    num_test: int = Field(500, ge=1)
    """Held-out examples generated (disjoint from training)."""
    split_seed: int = 0
    """Seed of the train/test split; independent of `seed` so runs with different seeds share a test set."""
    demo_fraction: float = Field(1.0, ge=0, le=1)
    """Share of training examples that keep their demonstration (a subset drawn with `split_seed`, the
    same for every `seed`); the others are prompt + answer only. 1.0 = every demonstration."""
    teacher_error: float = Field(0.0, ge=0, le=1)
    """Imperfect teacher: the training demonstrations carry this rate of the task's typical slip
    (arithmetic: a carry or borrow forgotten, per column that has one; countdown: a multiplication's result
    one too high, per * step); answers and the verifier stay true. 0 = a perfect teacher. Tasks without a
    modelled slip refuse a value > 0."""
    demo_style: Literal["plain", "verbose", "hedging", "recheck"] = "plain"
    """How the teacher writes demonstrations: `plain` (the task's compact worked solutions), `verbose`
    (the same steps with restatements and checks, same final answer; arithmetic: 2.5x longer on average) or
    `hedging` (the same steps with content-free filler phrases; arithmetic: 2.5x) or `recheck` (the plain
    solution, then up to two verbatim repeats after its answer, which the verifier ignores; arithmetic: 3x).
    Tasks without such a teacher refuse them."""
    grader: str = "exact"
    """`dataset` task: verifier by name (math, code, sql, exact, regex; see docs/verifiers.md)."""
    grader_options: dict[str, Any] = {}
    """`dataset` task: the grader's options, e.g. {timeout: 5, workers: 2} or, for code, {partial: false, wall_s: 5}."""
    columns: dict[str, str] = {}
    """`dataset` task: field -> column holding it (prompt, answer, demonstration, id, db); default: same name."""
    template: str | None = None
    """`dataset` task: prompt as Python str.format over the row's columns, e.g. "Q: {question}\nA:". None = prompt column."""
    chat_template: bool = False
    """`dataset` task: wrap each prompt as the user turn of the model tokenizer's chat template, if it has one."""
    format: str | None = None
    """`dataset` task: add a format reward (answer_tags, think_answer, boxed, code_fence, sql_fence) or None."""
    format_weight: float = Field(0.1, ge=0)
    """Weight of the `format` reward added to the grader's reward."""
    reward: str | None = None
    """`dataset` task: a reward function by import path, `package.module:function`, in place of the grader's
    reward: graft's `(example, completion) -> float | Score` or TRL's `(prompts, completions, **columns) ->
    list[float]` (docs/tasks.md). None = the grader's reward."""
    reward_correct_at: float | None = 1.0
    """`dataset` task with `reward`: a completion is correct when the function's reward is >= this (a
    function that returns a Score decides itself). None = `grader` decides correct (it runs too; its
    reward is logged in the parts, not added)."""


class SFTConfig(_Section):
    steps: int = Field(300, ge=0)
    """Supervised steps on demonstrations (run before RL)."""
    batch_size: int = Field(64, ge=1)
    """Demonstrations per SFT step."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate of the SFT phase (linear warm-up, then cosine to 10%)."""
    warmup_steps: int = Field(20, ge=0)
    """Linear warm-up steps of the SFT phase."""


class RLConfig(_Section):
    steps: int = Field(100, ge=0)
    """Policy-gradient steps (each: sample, score, update)."""
    num_prompts: int = Field(16, ge=1)
    """Prompts per RL step."""
    num_generations: int = Field(8, ge=1)
    """Completions sampled per prompt (one group)."""
    max_new_tokens: int = Field(64, ge=1)
    """Longest completion; longer ones are cut and marked finish_reason='length'."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature; the loss uses logits / temperature too, so ratios are consistent."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling threshold (1.0 = off)."""
    num_iterations: int = Field(1, ge=1)
    """Updates per rollout batch; > 1 reuses it with importance ratios (PPO epochs)."""
    lr: float = Field(3e-5, gt=0)
    """Constant learning rate of the RL phase (after `warmup_steps`). 3e-5: the quickstart's, and
    the best of those tried on a Hugging Face model it was not tuned on (docs/guide.md, "RL learning
    rate"); 2e-4, the old default, collapsed seeds after SFT."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps of the RL phase."""
    weight_decay: float | None = Field(None, ge=0)
    """AdamW weight decay of the RL phase's optimizer (from step sft.steps on); unset:
    optim.weight_decay, as in SFT. Lets SFT be regularised and RL not (bench/hybrid/README.md)."""
    stop: list[str] = []
    """Stop strings: a completion also ends when its decoded text ends with one of them (the stop
    string stays in the completion, finish_reason 'stop_string'). Also used at evaluation. The
    model's own end-of-sequence ids (tokenizer, generation_config.json) always stop it."""

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("an empty stop string would end every completion at once")
        return value


class VllmConfig(_Section):
    """rollout.engine=vllm: the vLLM engine's settings (graft.rollout.vllm_engine, docs/models.md)."""

    gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    """CUDA: the share of the GPU's memory vLLM may take (weights + KV cache); the rest is the update's."""
    sleep: bool = True
    """CUDA: sleep between rollouts (weights to host memory, KV cache freed) so the update has the
    memory; woken before the next rollout. The CPU build has no sleep mode (ignored there)."""
    cpu_kv_cache_gib: int = Field(1, ge=1)
    """CPU build: KV cache size in GiB (sets VLLM_CPU_KVCACHE_SPACE unless it is set already)."""
    max_model_len: int | None = Field(None, ge=8)
    """Longest prompt + completion the engine plans for; None = the model's own maximum."""
    enforce_eager: bool | None = None
    """No CUDA graphs or compilation: slower decoding, faster start. None = eager on the CPU (there the
    compilation took about 100 s on first use, more than a short run's rollouts), compiled on CUDA."""


class RolloutConfig(_Section):
    """How rollouts are computed (issue 7). `compact` and `share_prefill` save time or memory
    without changing what is sampled, so both are on by default; turn one off to measure it.
    `strategy` names the rollout source (iid, tree, partial); the fields prefixed by a strategy's
    name in their docs only apply to it."""

    compact: bool = True
    """Finished rows (EOS or rl.max_new_tokens) leave the decode batch and the KV cache. Same
    samples either way: each row's random draw does not depend on which rows are still decoding."""
    share_prefill: bool = True
    """Prefill each prompt once and copy its KV cache to its rl.num_generations completions
    (instead of prefilling every copy). Same samples either way."""
    over_provision: float = Field(1.5, ge=1.0)
    """partial: prompts in flight per step as a multiple of rl.num_prompts (buffered + new ones)."""
    stale: Literal["correct", "mask"] = "correct"
    """partial: what the loss does with tokens sampled by an older policy version. 'correct': keep
    them; their stored logprobs are the behaviour policy's, so the PPO/IS ratio corrects them.
    'mask': they get loss weight 0 (the group's reward and advantage still count its whole text)."""
    stale_is_cap: float | None = Field(None, gt=0)
    """partial, stale='correct': decoupled PPO with truncated importance sampling for stale tokens:
    their clip is taken around the current policy and the ratio current / behaviour policy, capped
    at this value, weights their loss. None = plain ratio to the behaviour policy."""
    max_staleness: int = Field(2, ge=0)
    """partial: a buffered completion whose first token is more than this many policy versions old
    is dropped and its row starts again from the prompt (0 = never continue an old completion)."""
    engine: Literal["graft", "vllm"] = "graft"
    """What generates the rollouts: `graft` (its own sampler: every strategy) or `vllm` (a vLLM engine
    in this process, i.i.d. only, Hugging Face models; weights loaded after each update: docs/models.md)."""
    vllm: VllmConfig = VllmConfig()
    strategy: Literal["iid", "tree", "partial"] = "iid"
    """The rollout source (graft.rollout.sources): how a prompt's rl.num_generations completions are
    sampled. `iid`: independently. `tree` (TreePO, arXiv 2508.17445): in segments that branch, so
    completions share prefixes and shared tokens are generated once (always prefills once and
    compacts). `partial` (APRIL, arXiv 2509.18521; docs/guide.md "Partial rollouts"): i.i.d. groups
    for ceil(over_provision x rl.num_prompts) prompts, decoding stops once rl.num_prompts groups are
    complete, those are trained and the unfinished ones continue next step; changes what is trained
    on (later groups are partly sampled by older weights)."""
    segment_len: int = Field(8, ge=1)
    """tree: tokens per segment; branch points lie at multiples of it."""
    branch: int = Field(2, ge=2)
    """tree: children of a branching node (at most; a node never holds more leaves than it must give)."""
    max_depth: int = Field(3, ge=1)
    """tree: branching levels: the prompt, then the ends of the first max_depth - 1 segments.
    branch**max_depth must reach rl.num_generations; max_depth=1 with branch >= num_generations is i.i.d."""
    branch_entropy: float = Field(0.0, ge=0)
    """tree: a node branches at a segment end only if its last segment's mean token entropy (nats,
    at rl.temperature) is at least this; 0 = always branch. Leaves still owed at the last branch
    point are split off there."""

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "partial" in data:
            raise ValueError("rollout.partial was replaced by rollout.strategy: set "
                             "rollout.strategy=partial (or iid) instead")
        return data


class AlgoConfig(_Section):
    advantage: str = "grpo"
    """Advantage estimator (registry name, see `graft list`)."""
    policy_loss: str = "ppo_clip"
    """Per-token policy loss (registry name)."""
    loss_agg: str = "token_mean"
    """How per-token losses become a scalar (registry name)."""
    clip_low: float = Field(0.2, ge=0)
    """PPO clip: lower bound of the ratio is 1 - clip_low."""
    clip_high: float = Field(0.28, ge=0)
    """PPO clip: upper bound of the ratio is 1 + clip_high (DAPO clip-higher)."""
    kl: str = "none"
    """KL estimator to the reference policy (k1, k2, k3) or 'none'."""
    kl_coef: float = Field(0.0, ge=0)
    """Weight of the KL term in the loss; the reference is the policy when RL starts."""
    entropy_coef: float = 0.0
    """Weight of an entropy bonus (subtracted from the loss)."""
    lp_reg_coef: float = Field(0.0, ge=0)
    """Lp-Reg: weight of the KL toward the min-p proxy on the lowest-probability negative-advantage
    tokens (0 = off; the paper's 1.0; graft.algos.lp_reg). Costs one no-grad policy forward a step."""
    lp_reg_min_p: float = Field(0.1, gt=0, le=1)
    """Lp-Reg: the proxy keeps tokens with probability >= lp_reg_min_p x the most likely one's."""
    lp_reg_frac: float = Field(0.01, gt=0, le=1)
    """Lp-Reg: share of the batch's negative-advantage tokens (the lowest-probability ones) it regularises."""
    kl_in: Literal["loss", "reward"] = "loss"
    """Where the KL to the reference goes: a loss term, or a per-token penalty folded into the reward."""
    mask_truncated: bool = False
    """Drop completions cut at rl.max_new_tokens from the loss (DAPO overlong filtering)."""
    gamma: float = Field(1.0, ge=0, le=1)
    """Discount of token rewards (reinforce_pp returns, gae)."""
    lam: float = Field(0.95, ge=0, le=1)
    """GAE lambda (gae only)."""
    critic_lr: float = Field(1e-4, gt=0)
    """Learning rate of the value model (gae only; its own AdamW, constant)."""
    value_clip: float = Field(0.2, ge=0)
    """PPO value clip c: V_old +- c (gae only; 0 = off)."""


class SelectConfig(_Section):
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal and refill from more prompts."""
    max_extra_prompts: int = Field(64, ge=0)
    """Budget per step of extra prompts (each with rl.num_generations rollouts) for refilling."""


class ShapingConfig(_Section):
    overlong_cache: int = Field(0, ge=0)
    """DAPO soft overlong punishment over the last N tokens before rl.max_new_tokens (0 = off)."""
    length: str = "none"
    """Length-based reward shaping (registry name: none, laser, grpo_lambda, s_grpo)."""
    target_len: int = Field(32, ge=1)
    """laser: the target length L_T (tokens)."""
    coef: float = Field(0.5, ge=0)
    """laser / grpo_lambda: weight of the length reward."""
    top_fraction: float = Field(0.2, ge=0, le=1)
    """grpo_lambda: the fraction lambda of the batch's groups, highest correctness ratio first,
    whose correct answers get the length penalty (GRPO-lambda's example: 0.2)."""
    decay: float = Field(0.5, gt=0, le=1)
    """s_grpo: reward of the k-th earliest correct exit is decay^(k-1)."""


class MixConfig(_Section):
    """How imitation (SFT on demonstrations) and reinforcement share the steps (docs/mixing.md).

    Every schedule first runs `sft.steps` SFT steps (the warm-up), then `rl.steps` steps whose kind
    the schedule decides; `sft_then_rl` makes them all RL steps (the classic two-stage recipe)."""

    schedule: str = "sft_then_rl"
    """Registry name (see `graft list`): sft_then_rl, interleaved, adaptive, hints, inject, weighted."""
    sft_lr: float | None = Field(None, gt=0)
    """Learning rate of SFT steps after the warm-up (interleaved, adaptive); None = rl.lr."""
    buffer_size: int = Field(16, ge=1)
    """interleaved (ReLIFT): an SFT step on the buffered demonstrations once it holds this many."""
    adaptive_p_min: float = Field(0.1, ge=0, le=1)
    """adaptive (SASR-style): lowest probability of an SFT step."""
    adaptive_p_max: float = Field(0.9, ge=0, le=1)
    """adaptive: highest probability of an SFT step."""
    adaptive_ema: float = Field(0.9, ge=0, lt=1)
    """adaptive: decay of the moving average of SFT gradient norms (0 = last step only)."""
    hint_p_low: float = Field(0.05, ge=0, le=1)
    """hints (UFT cosine): expected hint fraction of the demonstration at the end of the hint phase."""
    hint_p_high: float = Field(0.9, ge=0, le=1)
    """hints: expected hint fraction at the start of the mixed phase."""
    hint_steps: int | None = Field(None, ge=1)
    """hints: length T_hint of the hint phase in mixed steps (no hints after it); None = rl.steps."""
    inject_gamma: float = Field(0.1, gt=0)
    """inject (LUFFY): policy shaping f(p) = p / (p + gamma) on demonstration tokens."""
    sft_weight: float = Field(0.1, ge=0)
    """weighted: weight of the SFT loss added to the RL loss at the first mixed step."""
    sft_weight_end: float | None = Field(None, ge=0)
    """weighted: weight at the last mixed step (linear in between); None = constant `sft_weight`."""

    @model_validator(mode="after")
    def _p_order(self) -> MixConfig:
        if self.adaptive_p_min > self.adaptive_p_max:
            raise ValueError(f"adaptive_p_min ({self.adaptive_p_min}) > adaptive_p_max ({self.adaptive_p_max})")
        if self.hint_p_low > self.hint_p_high:
            raise ValueError(f"hint_p_low ({self.hint_p_low}) > hint_p_high ({self.hint_p_high})")
        return self


class CurriculumConfig(_Section):
    """Which prompts each RL step trains on (docs/curriculum.md). The default, `uniform`, is the
    seeded shuffled stream; `pcl` picks, from a larger candidate pool of that stream, the prompts
    whose predicted pass rate is nearest `target` (Prompt Curriculum Learning, arXiv 2510.01135).
    `dars` adds rollouts for prompts that turned out hard (arXiv 2508.13755)."""

    name: Literal["uniform", "pcl"] = "uniform"
    """`uniform`: the next rl.num_prompts prompts of the stream. `pcl`: the rl.num_prompts of the next
    pool_factor x rl.num_prompts whose predicted pass rate is nearest `target`."""
    pool_factor: int = Field(4, ge=1)
    """pcl: candidates per chosen prompt (the pool is pool_factor x rl.num_prompts prompts)."""
    target: float = Field(0.5, gt=0, lt=1)
    """pcl: the pass rate to aim at (0.5: binary rewards' group variance, hence GRPO's signal, is largest)."""
    predictor_lr: float = Field(0.5, gt=0)
    """pcl: step size of the pass-rate predictor's gradient steps (logistic regression on prompt features)."""
    predictor_steps: int = Field(4, ge=1)
    """pcl: full-batch gradient steps of the predictor on each RL step's observed pass rates."""
    dars: bool = False
    """DARS: after the first round of rollouts, give prompts whose pass rate is below `dars_threshold`
    extra groups of rl.num_generations rollouts each (needs select.dynamic_sampling off)."""
    dars_extra: int = Field(0, ge=0)
    """DARS: most extra rollouts per step, a multiple of rl.num_generations (0 = none)."""
    dars_threshold: float = Field(0.5, gt=0, le=1)
    """DARS: a prompt is hard when its first-round pass rate is below this."""


class OptimConfig(_Section):
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    """Global gradient-norm clip."""
    fused_adamw: bool = True
    """torch's fused AdamW kernel (all parameters in one pass; also what transformers' Trainer, so
    TRL, uses): 2-3x faster optimizer steps than the per-tensor loop on CPU (bench/README.md,
    per-phase tables). Same update to float rounding (~1e-7 per step), not bit for bit: false
    gives the per-tensor loop, graft's optimizer before 2026-12."""
    micro_batch_size: int | Literal["auto"] = "auto"
    """Sequences per forward/backward (SFT and RL); gradients accumulate over the whole batch. `auto`
    (graft.train.lean, docs/lean.md): the largest power of two up to 64 whose estimated activation
    and logits memory fits a quarter of the machine's memory (half of the GPU's)."""
    sort_by_length: bool | Literal["auto"] = "auto"
    """Length-aware micro-batches for the RL update: rows sorted by length and each micro-batch
    trimmed to its own longest row, so less compute goes to padding (`perf/padding_frac`). The loss
    and gradient match to float rounding, not bit for bit. `auto`: on when the batch has more rows
    than one micro-batch (with one micro-batch there is nothing to trim)."""
    logprob_chunk: int | Literal["auto"] = "auto"
    """Memory-lean log-probabilities: > 0 projects only completion positions through the LM head,
    this many tokens at a time, recomputing each chunk's logits in backward, so no full
    (batch, length, vocab) float32 logits exist. 0 = off (one full forward). The values match to
    float rounding (~1e-6), not bit for bit. `auto`: off below a 2,048-token vocabulary, else the
    power of two (16-1024) whose (chunk, vocab) float32 block is about 64 MiB."""
    logprob_impl: Literal["auto", "checkpoint", "fused"] = "auto"
    """How `logprob_chunk` > 0 computes each chunk: `checkpoint` = autograd ops under activation
    checkpointing (logits recomputed in backward); `fused` = one autograd function with the
    closed-form gradient of log p(target) and entropy (graft.train.fused_head, after Cut
    Cross-Entropy, arXiv 2411.09009): no recorded graph, fewer passes over each (chunk, vocab)
    block, less memory. Same values to float rounding. Needs a plain linear LM head (other heads
    use `checkpoint`); ignored when `logprob_chunk` is 0. `auto`: fused where the head allows."""
    skip_zero_advantage: bool = True
    """Leave the rows whose advantage is zero on every token (zero-variance groups under GRPO, Dr.
    GRPO, RLOO, Lite PPO) out of the RL update's forward and backward: their loss and gradient are
    exactly zero, and the aggregation weights stay the whole batch's, so the update is the same to
    float rounding for less compute (`perf/train_tokens`; `batch/skipped_rows` counts them; RL steps
    26-49% cheaper where a third to two thirds of groups are all-equal, bench/hybrid). false: every
    row is computed, as before 2026-12-02. Acts
    only when nothing else trains those rows: no KL term in the loss, `algo.entropy_coef` 0, no
    critic; rows with LUFFY's shaping loss or Lp-Reg's tokens are kept. `losses/entropy` is then
    the trained rows' entropy, and `losses/clip_frac` counts their clipped tokens only. Not the same as `select.dynamic_sampling`, which refills the batch
    with other prompts and so changes the update."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in backward instead of keeping them (Chen et
    al. 2016, arXiv 1604.06174): activation memory of the update drops from all layers to about
    one, for one extra forward of the blocks. HF models via `gradient_checkpointing_enable`, the
    tiny model via `torch.utils.checkpoint` per block; training only (sampling is unaffected).
    Same loss and gradients to float rounding."""

    @field_validator("micro_batch_size", "logprob_chunk", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any, info) -> Any:
        minimum = 1 if info.field_name == "micro_batch_size" else 0
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().lstrip("-").isdigit():
            raise ValueError(f"expected 'auto' or an integer >= {minimum}")
        if int(value) < minimum:
            raise ValueError(f"expected 'auto' or an integer >= {minimum}")
        return int(value)


class EvalConfig(_Section):
    num_examples: int = Field(500, ge=1)
    """Held-out examples evaluated (the first N of the test split)."""
    max_new_tokens: int = Field(64, ge=1)
    """Longest completion at evaluation."""
    batch_size: int = Field(250, ge=1)
    """Prompts decoded together at evaluation."""
    temperature: float = Field(1.0, gt=0)
    """Temperature of the sampled-accuracy pass (the greedy pass uses argmax)."""
    every: int = Field(0, ge=0)
    """Periodic held-out greedy accuracy after every N training steps (0 = off): logged as
    `eval/accuracy` and `eval/completion_len` on the metrics.jsonl row of the step that completes the
    N-th, 2N-th, ... step, and written to `eval/step_<steps done>.json`. Each pass costs one greedy
    decode of the `num_examples` examples; the evaluations after SFT and at the end run regardless."""
    sampled_every: int = Field(0, ge=0)
    """Periodic sampled accuracy (one completion per example at `temperature`) after every N steps
    (0 = off), independent of `every`: `eval/sampled_accuracy` and `eval/sampled_completion_len`.
    Its sampling keys are functions of (seed, steps done, example), never training's, so it changes
    no training number and a resumed run draws the same samples."""


class CheckpointConfig(_Section):
    every: int = Field(50, ge=1)
    """Save a checkpoint every N steps (and at the end)."""
    keep: int = Field(2, ge=1)
    """Most recent checkpoints kept on disk."""


class LogConfig(_Section):
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = False
    """Also write TensorBoard events into the run directory (needs `pip install 'graft[tensorboard]'`)."""
    wandb: bool = False
    """Also log each step's metrics, the config and the summary to Weights & Biases (needs
    `pip install 'graft[wandb]'`); its files go to <run dir>/wandb."""
    wandb_project: str = "graft"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (user or team); None = the account's default."""
    wandb_name: str | None = None
    """W&B run name; None = `name`."""
    wandb_mode: Literal["offline", "online"] = "offline"
    """`offline`: everything stays in <run dir>/wandb, no network, no login (upload later with
    `wandb sync`). `online`: streams to the W&B server (needs `wandb login` or WANDB_API_KEY)."""


class DistributedConfig(_Section):
    """Where rollouts and verification run (docs/distributed.md). `local`: in this process (no Ray
    needed). `ray`: rollout and reward worker actors on a Ray cluster (`pip install 'graft[ray]'`);
    the learner stays in this process and sends its weights to the rollout workers once per
    version through Ray's object store."""

    backend: Literal["local", "ray"] = "local"
    """`local` (in-process) or `ray` (worker actors; graft.distributed)."""
    rollout_workers: int = Field(1, ge=1)
    """ray: rollout worker actors, each holding a copy of the policy; a step's requests are split
    over them in contiguous chunks."""
    reward_workers: int = Field(1, ge=1)
    """ray: reward worker actors running the task's verifier (the code sandbox included)."""
    max_staleness: int = Field(0, ge=0)
    """ray: how many policy versions generation may run ahead of the learner. 0 = synchronous
    (every step samples with the current weights). k >= 1: the requests of step s may be sampled,
    while the learner trains earlier steps, by weights of version >= s - k; every rollout records
    its version and the loss corrects stale tokens like partial rollouts' (rollout.stale,
    rollout.stale_is_cap). Not rollout.max_staleness, which is partial rollouts' own bound."""
    address: str | None = None
    """ray: the cluster to join (`ray://host:10001`, `host:6379` or `auto`). None = the RAY_ADDRESS
    environment variable when set, else a local cluster started for the run."""
    worker_timeout_s: float = Field(600.0, gt=0)
    """ray: a worker call that has not answered after this many seconds is treated as dead: the
    worker is replaced and its requests re-issued."""
    rollout_placement: Literal["any", "spread"] = "any"
    """ray: `any`: where Ray finds room. `spread`: one rollout worker per node (a STRICT_SPREAD
    placement group of rollout_workers bundles of worker_cpus CPUs); needs that many nodes."""
    worker_cpus: float = Field(1.0, ge=0)
    """ray: CPUs each worker actor reserves (fractions allowed; 0 = schedule anywhere)."""
    rollout_worker_gpus: float = Field(0.0, ge=0)
    """ray: GPUs each rollout worker reserves (Ray's `num_gpus`; a fraction shares one: 0.5 = two
    workers per GPU). > 0: its policy copy goes on the GPU Ray assigns it (`cuda`, Ray sets the
    worker's CUDA_VISIBLE_DEVICES), whatever `model.device` says. 0: it follows `model.device`
    without reserving anything (on a GPU box every worker then shares the learner's GPU 0)."""
    max_replacements: int = Field(3, ge=0)
    """ray: how many times one call's worker may be replaced before the run stops with an error."""
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    """ray: how a new policy version reaches the rollout workers. `object_store`: one `ray.put`,
    each worker fetches it. `broadcast`: a gloo broadcast from the learner over a torch.distributed
    group of it and the rollout workers (graft.distributed.weights; bench/weight_sync.py measures
    both); a failed broadcast falls back to the object store for that version, and a replaced
    worker gets its call's version through the object store."""


class Config(_Section):
    name: str = "run"
    """Run name (also the default run directory name)."""
    seed: int = 0
    """Seeds model init, data order and sampling."""
    threads: int = Field(2, ge=1)
    """torch CPU threads (fixed so that runs are reproducible)."""
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    sft: SFTConfig = SFTConfig()
    rl: RLConfig = RLConfig()
    rollout: RolloutConfig = RolloutConfig()
    algo: AlgoConfig = AlgoConfig()
    select: SelectConfig = SelectConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    shaping: ShapingConfig = ShapingConfig()
    mix: MixConfig = MixConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    distributed: DistributedConfig = DistributedConfig()

    @property
    def total_steps(self) -> int:
        return self.sft.steps + self.rl.steps


# --------------------------------------------------------------------------- loading


def _describe(error: dict) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown config key '{key}'"
    got = error.get("input")
    got_txt = f", got {got!r}" if not isinstance(got, dict) else ""
    return f"config key '{key}': {error['msg'].lower()}{got_txt}"


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'a.b=c' -> ('a.b', value parsed as YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. rl.steps=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def build_config(tree: dict | None, overrides: list[str] = ()) -> Config:
    """Validate a plain dict (+ overrides) into a Config, raising ConfigError on the first problems:
    types and ranges (pydantic), then every registered component's own checks
    (``graft.validation.validate_config``)."""
    tree = dict(tree or {})
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    try:
        cfg = Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors()[:5])) from None
    from graft.validation import (
        validate_config,  # the components' own checks (they import this module)
    )

    validate_config(cfg)
    return cfg


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A YAML config as a dict; a top-level ``base: FILE`` (relative to this file) is read first
    and this file's keys are merged over it, section by section."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: 'base' files include each other in a loop")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path}{where}: {reason}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"{path}: config key 'base' must be a file name, got {base!r}")
    return _merge(_read_yaml(path.parent / base, (*chain, path.resolve())), tree)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config file (following ``base:``) and apply ``--set`` overrides."""
    tree = _read_yaml(Path(path)) if path is not None else {}
    return build_config(tree, overrides)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
