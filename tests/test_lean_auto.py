"""optim.* = auto (graft.train.lean): the rules on hand-computed cases, and what prepare resolves
for the built-in model and for a Hugging Face model with a real-sized vocabulary."""

import pytest

from graft.config import ConfigError, build_config, load_config
from graft.models.hf_testing import build_tiny_hf_model
from graft.train import lean
from graft.train.loop import prepare


def test_chunk_rule_on_hand_computed_vocabularies():
    assert lean.chunk_for(22) == 0  # a character vocabulary: full logits are small
    assert lean.chunk_for(2047) == 0
    # 64 MiB / (4 B x V): 32,000 -> 524.288 -> 512; 151,936 -> 110.4 -> 64; 2,048 -> 8192 -> capped 1024
    assert lean.chunk_for(32000) == 512
    assert lean.chunk_for(151936) == 64
    assert lean.chunk_for(2048) == 1024
    assert lean.chunk_for(10**7) == 16  # floor


def test_activation_estimate_is_korthikanti_eq1():
    # s=100, h=64, a=4, 2 layers, fp32: 2 * 100 * 64 * (34 + 5*4*100/64) * 4/2 = 2 * 6400 * 65.25 * 2
    shape = lean.Shape(vocab=50, hidden=64, layers=2, heads=4, seq_len=100, rows=8, bytes_per_value=4)
    assert lean.activation_bytes(shape) == pytest.approx(2 * 6400 * 65.25 * 2)
    assert lean.logits_bytes(shape, chunk=0) == 12 * 100 * 50
    assert lean.logits_bytes(shape, chunk=16) == 0


def test_micro_batch_fits_the_budget_and_never_exceeds_64():
    shape = lean.Shape(vocab=50, hidden=64, layers=2, heads=4, seq_len=100, rows=256)
    per_row = lean.activation_bytes(shape) + lean.logits_bytes(shape, 0)
    assert lean.micro_batch_for(shape, 0, budget_bytes=1e12) == 64  # the old fixed default caps it
    assert lean.micro_batch_for(shape, 0, budget_bytes=10 * per_row) == 8  # 16 rows would not fit
    assert lean.micro_batch_for(shape, 0, budget_bytes=0.5 * per_row) == 1  # at least one row
    small = lean.Shape(vocab=50, hidden=64, layers=2, heads=4, seq_len=100, rows=12)
    assert lean.micro_batch_for(small, 0, budget_bytes=1e12) == 16  # 12 rows: one micro-batch of <= 16
    assert lean.sort_for(256, 64) and not lean.sort_for(64, 64)


def test_explicit_values_are_kept_and_auto_is_the_plain_path_until_resolved():
    cfg = build_config({}, ["optim.logprob_chunk=7", "optim.micro_batch_size=3"])
    shape = lean.Shape(vocab=32000, hidden=64, layers=2, heads=4, seq_len=100, rows=256)
    got = lean.resolve(cfg.optim, shape, budget_bytes=1e12, plain_head=False)
    assert (got.logprob_chunk, got.micro_batch_size) == (7, 3)
    assert got.logprob_impl == "checkpoint" and got.sort_by_length  # no plain head; 256 rows > 3
    assert lean.settings(build_config({}, []).optim) == lean.LeanSettings(0, "checkpoint", 64, False)


@pytest.mark.parametrize("bad, key", [("optim.micro_batch_size=0", "optim.micro_batch_size"),
                                      ("optim.logprob_chunk=-1", "optim.logprob_chunk"),
                                      ("optim.micro_batch_size=lots", "optim.micro_batch_size")])
def test_bad_values_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=f"'{key}'.*'auto' or an integer"):
        build_config({}, [bad])


def test_prepare_resolves_the_quickstart_to_the_plain_head_with_sorted_micro_batches():
    cfg = prepare(load_config("configs/quickstart.yaml", ["task.num_train=50", "task.num_test=5"])).cfg
    o = cfg.optim
    assert o.logprob_chunk == 0  # a character vocabulary
    assert o.micro_batch_size == 64 and o.sort_by_length  # 32 x 8 = 256 RL rows: four micro-batches


def test_prepare_resolves_a_real_vocabulary_to_the_fused_chunked_head(tmp_path):
    model = build_tiny_hf_model(tmp_path / "m", vocab_size=32000)
    cfg = prepare(build_config({}, [f"model.path={model}", "task.num_train=20", "task.num_test=4",
                                    "rl.num_prompts=2", "rl.num_generations=4", "sft.batch_size=8"])).cfg
    o = cfg.optim
    assert (o.logprob_chunk, o.logprob_impl) == (512, "fused")
    assert o.micro_batch_size == 8 and not o.sort_by_length  # 8 rows at most: one micro-batch
