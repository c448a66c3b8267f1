import torch

from graft.models.tiny import TinyConfig
from graft.models.tiny_policy import TinyPolicy
from graft.rollout.sampler import pick_tokens, sample
from graft.train.batch import completion_logprobs, make_batch


def _policy():
    return TinyPolicy.create(TinyConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=2), seed=0)


def test_pick_tokens_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    seen = {int(pick_tokens(logits, 1.0, 0.7, gen)[0]) for _ in range(200)}
    assert seen == {0, 1}  # 0.5 + 0.3 reaches 0.7; tokens 2, 3 never drawn
    tok, logp = pick_tokens(logits, 0.0, 1.0, None)
    assert int(tok) == 0 and abs(float(logp) - torch.log(torch.tensor(0.5)).item()) < 1e-6


def test_sample_logprobs_match_training_forward_and_stop_at_eos():
    pol = _policy()
    prompts = [pol.tokenizer.encode(p) for p in ["12+3=", "7-5=", "99+99="]] * 2
    gen = torch.Generator().manual_seed(1)
    rollouts = sample(pol, prompts, max_new_tokens=12, temperature=1.0, generator=gen)
    for ro in rollouts:
        assert len(ro.completion_ids) == len(ro.logprobs) <= 12
        assert (ro.finish_reason == "stop") == (pol.tokenizer.eos_id in ro.completion_ids)
        if ro.finish_reason == "stop":
            assert ro.completion_ids.index(pol.tokenizer.eos_id) == len(ro.completion_ids) - 1
    batch = make_batch([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts],
                       pol.tokenizer.pad_id, [r.logprobs for r in rollouts])
    with torch.no_grad():
        logp, _ = completion_logprobs(pol, batch)
    assert float(((logp - batch.old_logprobs) * batch.loss_mask).abs().max()) < 1e-4


def test_same_generator_state_same_samples():
    pol = _policy()
    prompts = [pol.tokenizer.encode("1+1=")] * 4
    a = sample(pol, prompts, max_new_tokens=8, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = sample(pol, prompts, max_new_tokens=8, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]
