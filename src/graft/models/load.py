"""Build or load the policy a config names, on its device, in its precision, with its adapters."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from graft.errors import GraftError
from graft.models.device import resolve_device, weight_dtype
from graft.models.policy import Policy

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as ``huggingface_hub`` finds it, read from the environment now:
    ``HF_HUB_CACHE`` (or the older ``HUGGINGFACE_HUB_CACHE``), else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (default ``~/.cache/huggingface/hub``)."""
    env = os.environ
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_model_path(path: str | Path) -> Path:
    """``model.path`` -> a local model directory: the directory itself, or, for a name that is not
    one, the snapshot of that repo id in the local Hugging Face cache (offline: nothing is
    downloaded). Raises FileNotFoundError saying where it looked."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ValueError(f"model path {path} is not a directory")
    name = str(path)
    if not _REPO_ID.fullmatch(name) or name.endswith((".", "-")):
        raise FileNotFoundError(f"model directory {path} does not exist")
    cache = hub_cache_dir()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, cache_dir=str(cache), local_files_only=True))
    except Exception:  # noqa: BLE001 -- not cached (or an unusable entry): one line that says where
        where = cache / ("models--" + name.replace("/", "--"))
        raise FileNotFoundError(
            f"{name!r} is not a local directory, and not in the Hugging Face cache (looked for {where}, "
            "offline); graft never downloads models: download it first (e.g. `hf download "
            f"{name}`) or give its directory") from None


def create_policy(model_cfg, seed: int) -> Policy:
    """``model.path`` set: the saved model there (a Hugging Face directory or cached repo id, or a
    graft checkpoint's ``model/``), with fresh LoRA adapters when ``model.lora.rank`` > 0. Unset:
    a fresh seeded tiny transformer. Either way on ``model.device`` in ``model.precision``."""
    device = resolve_device(model_cfg.device)
    if model_cfg.path:
        try:
            directory = resolve_model_path(model_cfg.path)
            policy = load_saved_policy(directory, model_cfg)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise GraftError(f"model.path: {exc}") from None
        if model_cfg.lora.rank > 0:
            from graft.models.hf import HFPolicy
            from graft.models.lora import add_adapters, is_lora

            if not isinstance(policy, HFPolicy):
                raise GraftError(f"model.lora.rank: LoRA needs a Hugging Face model; {directory} holds "
                                 "graft's built-in tiny transformer")
            if is_lora(policy):
                raise GraftError(f"model.path: {directory} is a LoRA checkpoint; give its base model "
                                 "(or export a merged model with `graft export RUN --merge`)")
            add_adapters(policy, model_cfg.lora, seed, directory.resolve())
        return policy
    from graft.models.tiny import TinyConfig
    from graft.models.tiny_policy import TinyPolicy
    from graft.models.tokenizer import CharTokenizer

    vocab = CharTokenizer().vocab_size
    config = TinyConfig(
        vocab_size=vocab,
        d_model=model_cfg.d_model,
        n_layers=model_cfg.n_layers,
        n_heads=model_cfg.n_heads,
        max_seq_len=model_cfg.max_seq_len,
    )
    return TinyPolicy.create(config, seed=seed).place(device, model_cfg.precision)


def load_saved_policy(directory: str | Path, model_cfg=None) -> Policy:
    """Load a policy saved by ``Policy.save`` (any kind), e.g. ``checkpoints/step_N/model``, on
    ``model_cfg``'s device and precision (None: CPU, float32). A LoRA checkpoint is its base model
    (``model_cfg.path`` when given, else the one its marker names) plus the saved adapter."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such model directory")
    device = resolve_device(model_cfg.device) if model_cfg is not None else resolve_device("cpu")
    precision = model_cfg.precision if model_cfg is not None else "fp32"
    marker = directory / "graft_model.json"
    kind = json.loads(marker.read_text()).get("type") if marker.is_file() else None
    if kind == "graft-tiny":
        from graft.models.tiny_policy import TinyPolicy

        return TinyPolicy.load(directory).place(device, precision)
    from graft.models.hf import HFPolicy

    if kind == "hf-lora":
        from graft.models.lora import adapter_marker, load_adapter

        base = resolve_model_path(model_cfg.path) if model_cfg is not None and model_cfg.path \
            else Path(adapter_marker(directory)["base"])
        policy = HFPolicy.load(base, dtype=weight_dtype(precision)).place(device, precision)
        return load_adapter(policy, directory, base.resolve())
    return HFPolicy.load(directory, dtype=weight_dtype(precision)).place(device, precision)
