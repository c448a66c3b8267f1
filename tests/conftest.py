import pytest

# A run small enough for a unit test: tiny model, tiny task, a few steps of each phase.
TINY = [
    "name=tiny", "log.progress=false", "threads=1",
    "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
    "task.name=arithmetic", "task.difficulty=2", "task.num_train=300", "task.num_test=40",
    "sft.steps=4", "sft.batch_size=16", "sft.warmup_steps=1",
    "rl.steps=4", "rl.num_prompts=4", "rl.num_generations=4", "rl.max_new_tokens=24",
    "eval.num_examples=16", "eval.max_new_tokens=24", "checkpoint.every=2",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.gpu`` tests need CUDA: skipped, saying so, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu test: torch.cuda.is_available() is False")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
