"""trainer.strategy=fsdp (FSDP2): the sharding helpers in 2 gloo processes, and the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from conftest import FAST, read_metrics, run_train


class Block(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.frozen = torch.nn.Linear(width, width)
        self.frozen.requires_grad_(False)
        self.lora = torch.nn.Linear(width, width, bias=False)

    def forward(self, x):
        return torch.tanh(self.frozen(x) + self.lora(x))


class Net(torch.nn.Module):
    """Shaped like a decoder: a frozen stem, a ModuleList of identical blocks, a trainable head."""

    def __init__(self, width: int = 6, depth: int = 3):
        super().__init__()
        self.stem = torch.nn.Linear(4, width)
        self.stem.requires_grad_(False)
        self.layers = torch.nn.ModuleList(Block(width) for _ in range(depth))
        self.head = torch.nn.Linear(width, 1)

    def forward(self, x):
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h)
        return self.head(h).squeeze(-1)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 4, generator=g), torch.randn(8, generator=g)


def _reference(max_norm: float):
    """One process, the whole batch: the norm and clipped gradients FSDP must reproduce."""
    from rolecraft.modeling.sharding import clip_grad_norm

    torch.manual_seed(1)
    net = Net()
    x, y = _data()
    ((net(x) - y) ** 2).sum().backward()
    norm = clip_grad_norm([p for p in net.parameters() if p.requires_grad], max_norm)
    return net, float(norm), {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}


def _worker(rank: int, world: int, init: str, out: str, max_norm: float) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from rolecraft.modeling.sharding import clip_grad_norm, fully_shard_model, gathered_trainable, is_sharded

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        torch.manual_seed(1)
        net = Net()
        units = fully_shard_model(net, init_device_mesh("cpu", (world,)))
        again = fully_shard_model(net, init_device_mesh("cpu", (world,)))
        x, y = _data()
        mine = slice(rank * 4, rank * 4 + 4)
        # FSDP averages gradients over ranks: scale by world so the update is the global sum's
        (((net(x[mine]) - y[mine]) ** 2).sum() * world).backward()
        local_sq = sum(float(p.grad.to_local().float().pow(2).sum()) for p in net.parameters() if p.grad is not None)
        norm = clip_grad_norm([p for p in net.parameters() if p.requires_grad], max_norm)
        grads = {n: p.grad.full_tensor().clone() for n, p in net.named_parameters() if p.grad is not None}
        weights = gathered_trainable(net)
        result = {"units": units, "again": again, "sharded": is_sharded(net), "norm": float(norm),
                  "local_norm": local_sq ** 0.5, "weight_keys": sorted(weights),
                  "all_dtensor": all(isinstance(p, DTensor) for p in net.parameters())}
        torch.save({"result": result, "grads": grads, "weights": weights}, os.path.join(out, f"rank{rank}.pt"))
        # both ranks done before either tears down: a rank destroying its group while the other still
        # talks to it aborted the other once on a loaded machine ("terminate called without an
        # active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sharded_clipping_and_gather_match_one_process(tmp_path):
    """Two gloo processes shard a frozen+trainable net with fully_shard_model: the clipping norm is
    the global one (the per-shard norm is not), the clipped gradients equal one process's, and the
    gathered trainable weights land on rank zero only, under their unsharded names."""
    import torch.multiprocessing as mp

    max_norm = 0.05
    ref_net, ref_norm, ref_grads = _reference(max_norm)
    assert ref_norm > 10 * max_norm  # clipping is active
    init = f"file://{tmp_path / 'pg'}"
    mp.spawn(_worker, args=(2, init, str(tmp_path), max_norm), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for r in (r0, r1):
        res = r["result"]
        assert res["units"] == 4 and res["again"] == 0 and res["sharded"] and res["all_dtensor"]
        assert res["norm"] == pytest.approx(ref_norm, rel=1e-5)
        # what torch's clip_grad_norm_ on this rank's shards alone would use: not the global norm
        assert abs(res["local_norm"] - ref_norm) > 0.01 * ref_norm
        for name, g in ref_grads.items():
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-5, atol=1e-7)
    trainable = {n: p for n, p in ref_net.named_parameters() if p.requires_grad}
    assert sorted(r0["weights"]) == sorted(trainable) and r1["weights"] == {}
    for name, p in trainable.items():
        torch.testing.assert_close(r0["weights"][name], p.detach())


def test_mixed_precision_policy_for_bf16_base_with_fp32_lora():
    from rolecraft.modeling.sharding import _mixed_precision

    net = Net()
    assert _mixed_precision(net).param_dtype is None  # uniform fp32: nothing cast
    for layer in net.layers:
        layer.frozen.to(torch.bfloat16)
    mp = _mixed_precision(net)
    assert mp.param_dtype == torch.bfloat16 and mp.reduce_dtype == torch.float32


def test_eval_batches_give_every_rank_the_same_number_of_forwards():
    from rolecraft.data.batching import eval_batches, filler_row
    from rolecraft.data.tokenize import IGNORE_INDEX

    for n, micro, world in [(5, 2, 2), (7, 2, 3), (1, 4, 2), (8, 2, 2), (0, 2, 2)]:
        per_rank = [eval_batches(n, micro, r, world) for r in range(world)]
        assert len({len(b) for b in per_rank}) == 1, (n, micro, world, per_rank)
        real = sorted(i for b in per_rank for batch in b for i in batch if i < n)
        assert real == list(range(n))  # every row once, fillers (index n) apart
        assert all(batch == [n] for b in per_rank for batch in b if n in batch)
    assert eval_batches(5, 2, 0, 1) == [[0, 1], [2, 3], [4]]  # one process: no filler
    assert set(filler_row(0).labels) == {IGNORE_INDEX}


# ---- the real CLI, 2 CPU processes over gloo ------------------------------------------------------

def _adapter(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_fsdp_resumed_run_equals_uninterrupted_and_exports_plain_peft(tmp_path, cache_dir):
    whole = tmp_path / "whole"
    r = run_train(["trainer=fsdp_cpu", *FAST, f"hydra.run.dir={whole}"], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(whole)
    assert m["train/world_size"] == 2 and m["train/steps"] == 6 and isinstance(m["test/rouge_l/avg"], float)
    assert "still referenced" not in r.stdout + r.stderr  # the sharded model was freed before evaluation

    ckpt = torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])  # gathered adapter only
    assert len(ckpt["rolecraft_rng"]["torch_per_rank"]) == 2

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rolecraft.modeling.tiny import ensure_embedded

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ensure_embedded("tiny", cache_dir)),
                                      str(whole / "adapter"))
    lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b.values())  # every B trained (starts at zero)
    assert json.loads((whole / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == "embedded:tiny"

    # as after a crash at step 3: resumed from the uninterrupted run's own step-3 checkpoint
    resumed = tmp_path / "resumed"
    r = run_train(["trainer=fsdp_cpu", *FAST, f"ckpt_path={whole / 'checkpoints' / 'step-3.ckpt'}",
                   f"hydra.run.dir={resumed}"], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    b = read_metrics(resumed)
    assert b["train/steps"] == 6 and b["train/loss"] == m["train/loss"] and b["val/loss"] == m["val/loss"]
    assert b["test/rouge_l/avg"] == m["test/rouge_l/avg"]
    want, got = _adapter(whole), _adapter(resumed)
    assert sorted(want) == sorted(got)
    for k in want:  # LoRA dropout included: every rank's generator is restored
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-7)


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process_with_clipping_on_and_resume_across(tmp_path, cache_dir):
    """Same global batch (2 x 4 vs 1 x 8), no dropout, a clipping bound far below the gradient norm:
    the sharded run's adapter equals the single process's. AdamW with a tiny eps is blind to how
    gradients are scaled, so optim.eps=1 makes the update follow the clipped gradient itself: with
    each rank clipping by its own shards' norm (measured: a deliberately broken clip) the adapters
    differ by half the largest LoRA weight; with the global norm, by 4e-9."""
    common = ["trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.checkpoint_every_n_steps=3",
              "eval.enabled=false", "trainer.enable_progress_bar=false", "lora.dropout=0",
              "optim.gradient_clip_val=0.01", "optim.eps=1.0", "optim.lr=1.0"]
    one, two = tmp_path / "one", tmp_path / "two"
    r = run_train([*common, "optim.batch_size=8", f"hydra.run.dir={one}"], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_train(["trainer=fsdp_cpu", *common, "optim.batch_size=4", f"hydra.run.dir={two}"], cache_dir, tmp_path,
                  timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(two)
    assert b["train/world_size"] == 2 and b["train/tokens"] == a["train/tokens"]
    assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-5)
    assert b["val/loss"] == pytest.approx(a["val/loss"], rel=1e-5)
    want, got = _adapter(one), _adapter(two)
    scale = max(float(v.abs().max()) for k, v in want.items() if "lora_B" in k)
    assert scale > 0
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-3 * scale)

    # the checkpoints have one format: the single process's resumes under FSDP and the other way round
    crossed = {}
    for name, src, extra in (("to_fsdp", one, ["trainer=fsdp_cpu", "optim.batch_size=4"]),
                             ("to_one", two, ["optim.batch_size=8"])):
        out = tmp_path / name
        r = run_train([*common, "trainer.max_steps=4", *extra, f"ckpt_path={src / 'checkpoints' / 'last.ckpt'}",
                       f"hydra.run.dir={out}"], cache_dir, tmp_path, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        assert read_metrics(out)["train/steps"] == 4
        crossed[name] = _adapter(out)
    for k in want:
        assert not torch.equal(crossed["to_fsdp"][k], want[k]) or "lora_A" in k  # step 4 moved the weights
        torch.testing.assert_close(crossed["to_fsdp"][k], crossed["to_one"][k], rtol=1e-4, atol=1e-3 * scale)


@pytest.mark.slow
def test_fsdp_bf16_base_with_fp32_lora(tmp_path, cache_dir):
    """The real presets' case: a bf16 base and peft's fp32 LoRA weights in one FSDP unit, computed in
    bf16 (MixedPrecisionPolicy), the fp32 LoRA shards updated and gathered into the adapter."""
    run = tmp_path / "bf16"
    r = run_train(["trainer=fsdp_cpu", "model.dtype=bfloat16", "trainer.precision=bf16-mixed", "trainer.max_steps=2",
                   "trainer.val_check_interval=2", "eval.enabled=false", "trainer.enable_progress_bar=false",
                   f"hydra.run.dir={run}"], cache_dir, tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(run)
    assert m["train/world_size"] == 2 and 0 < m["train/loss"] < 20
    adapter = _adapter(run)
    assert all(v.dtype == torch.float32 for v in adapter.values())  # the fp32 shards were gathered
    assert any(float(v.abs().sum()) > 0 for k, v in adapter.items() if "lora_B" in k)
