"""trainer.compile=layers: decoder layers compiled in place, same loss, same parameter names."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import FAST, run_train
from rolecraft.errors import ConfigError
from rolecraft.modeling.compile import apply_compile, decoder_layers


def test_unknown_compile_mode_is_refused_before_any_model_loads(tmp_path, cache_dir):
    r = run_train(["trainer.compile=graph", *FAST], cache_dir, tmp_path / "runs", timeout=120)
    # a typed choice (config.CompileMode): Hydra refuses it while composing, listing the choices
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Invalid value 'graph', expected one of [none, layers]" in r.stderr and "trainer.compile" in r.stderr
    with pytest.raises(ConfigError, match="trainer.compile='x'"):
        apply_compile(torch.nn.Linear(2, 2), "x")


@pytest.mark.slow
def test_compiled_layers_give_the_eager_loss(cache_dir):
    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.data.batching import pad_batch
    from rolecraft.data.prompts import PromptBuilder
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.lit_module import token_loss_sum
    from rolecraft.modeling.lora import apply_lora

    model_cfg = OmegaConf.structured(ModelConfig())
    base, tok, _ = load_base(model_cfg, cache_dir)
    ds = schema.load(resolve_data_root("embedded:demo"))
    enc = ChatEncoder(tok, 512, 64, model_cfg.chat_template)
    prompts = PromptBuilder(ds, emotions=True, num_exemplars=2)
    batch = pad_batch([enc.encode(prompts.messages(s, s.references[0]), s.id) for s in ds.samples[:2]],
                      tok.pad_token_id)
    torch.manual_seed(0)
    model = apply_lora(base, OmegaConf.structured(LoraConfig()), model_cfg, "embedded:tiny")
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    with torch.no_grad():
        eager = float(token_loss_sum(model, batch, True)[0])
        assert apply_compile(model, "layers") == len(decoder_layers(model)) == 2
        assert all(layer._compiled_call_impl is not None for layer in decoder_layers(model))
        compiled = float(token_loss_sum(model, batch, True)[0])
    assert [n for n, _ in model.named_parameters()] == names  # checkpoints and adapters keep their keys
    assert compiled == pytest.approx(eager, rel=1e-4)
