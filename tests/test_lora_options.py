"""LoRA options: target_modules as a list or all-linear, DoRA, rsLoRA, modules_to_save; and QLoRA's
model.quantization (its recipe, its refusal without CUDA/bitsandbytes, export against the unquantized base)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from conftest import REPO, cli_env

from rolecraft.errors import ConfigError


def _compose(*overrides):
    from hydra import compose, initialize_config_dir

    import rolecraft.config
    from rolecraft.paths import config_dir

    rolecraft.config.register("train_schema")
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=["paths.output_dir=.", *overrides])


@pytest.mark.parametrize("value, expect", [("all-linear", "all-linear"), ("[all-linear]", "all-linear"),
                                           ("[q_proj,v_proj]", ["q_proj", "v_proj"]), ("null", None)])
def test_target_modules_compose_as_a_list_or_all_linear(value, expect):
    from rolecraft.config_checks import check_train
    from rolecraft.modeling.lora import lora_targets

    cfg = _compose(f"lora.target_modules={value}")
    check_train(cfg)
    assert lora_targets(cfg.lora, cfg.model) == (expect if expect is not None else list(cfg.model.lora_targets))


@pytest.mark.parametrize("override, words", [
    ("lora.target_modules=q_proj", "give a list of module names"),
    ("lora.target_modules=[]", "name at least one module"),
    ("lora.target_modules=[all-linear,q_proj]", "use it alone"),
    ("lora.modules_to_save=['']", "lora.modules_to_save"),
])
def test_bad_lora_options_are_one_line_errors(override, words):
    from rolecraft.config_checks import check_train

    with pytest.raises(ConfigError) as e:
        check_train(_compose(override))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_lora_switches_are_typed():
    cfg = _compose("lora.use_dora=true", "lora.use_rslora=true", "lora.modules_to_save=[norm]")
    assert cfg.lora.use_dora is True and cfg.lora.use_rslora is True and list(cfg.lora.modules_to_save) == ["norm"]
    with pytest.raises(Exception, match="use_dora"):
        _compose("lora.use_dora=perhaps")
    defaults = _compose("model=glm4_9b")  # presets keep the defaults
    assert defaults.lora.target_modules is None and not defaults.lora.use_dora and not defaults.lora.use_rslora
    assert list(defaults.lora.modules_to_save) == []


def test_all_linear_dora_rslora_and_modules_to_save_round_trip_through_plain_peft(cache_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.lora import apply_lora

    model_cfg = OmegaConf.structured(ModelConfig())
    lora_cfg = OmegaConf.structured(LoraConfig(r=4, alpha=8, target_modules="all-linear", use_dora=True,
                                               use_rslora=True, modules_to_save=["norm"]))
    base, _, path = load_base(model_cfg, cache_dir)
    model = apply_lora(base, lora_cfg, model_cfg, "embedded:tiny")
    wrapped = {n.split(".")[-1] for n, mod in model.named_modules() if hasattr(mod, "lora_A")}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # not lm_head
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert "default" in layer.lora_magnitude_vector  # DoRA
    assert math.isclose(layer.scaling["default"], 8 / math.sqrt(4))  # rsLoRA: alpha / sqrt(r), not alpha / r
    assert any("modules_to_save" in n for n, _ in model.named_modules())
    # a non-trivial adapter: every trained piece must survive save + plain-peft load
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "adapter")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["use_dora"] and saved["use_rslora"] and saved["modules_to_save"] == ["norm"]
    ids = torch.tensor([[5, 17, 300, 42, 9]])
    model.eval()
    with torch.no_grad():
        want = model(input_ids=ids).logits
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), tmp_path / "adapter").eval()
        got = plain(input_ids=ids).logits
        bare = AutoModelForCausalLM.from_pretrained(path)(input_ids=ids).logits
    assert torch.allclose(want, got, atol=1e-5)
    assert not torch.allclose(want, bare, atol=1e-3)  # the adapter does something


def test_missing_modules_to_save_named_before_training(cache_dir):
    from rolecraft.config import LoraConfig, ModelConfig
    from rolecraft.modeling.base import load_base
    from rolecraft.modeling.lora import apply_lora

    model_cfg = OmegaConf.structured(ModelConfig())
    base, _, _ = load_base(model_cfg, cache_dir)
    with pytest.raises(ConfigError, match=r"lora.modules_to_save: \['score'\] not found"):
        apply_lora(base, OmegaConf.structured(LoraConfig(modules_to_save=["score"])), model_cfg, "embedded:tiny")


# ---- QLoRA ---------------------------------------------------------------------------------------


def test_quantization_is_a_closed_choice():
    assert [str(_compose(f"model.quantization={q}").model.quantization) for q in ("none", "4bit", "8bit")] == \
        ["none", "4bit", "8bit"]
    with pytest.raises(Exception, match="quantization"):
        _compose("model.quantization=3bit")


def test_quantization_recipe_is_qlora():
    import torch

    from rolecraft.modeling.quant import quantization_kwargs

    assert quantization_kwargs(_compose().model) == {}
    q4 = quantization_kwargs(_compose("model.quantization=4bit").model)["quantization_config"]
    assert q4.load_in_4bit and q4.bnb_4bit_quant_type == "nf4" and q4.bnb_4bit_use_double_quant
    assert q4.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_kwargs(_compose("model.quantization=8bit").model)["quantization_config"].load_in_8bit


def _refusal_expected() -> str | None:
    """What this machine must say to model.quantization=4bit, or None where it can train."""
    if importlib.util.find_spec("bitsandbytes") is None:
        return "needs bitsandbytes"
    import torch

    from rolecraft.modeling.quant import bitsandbytes_cpu_works

    if torch.cuda.is_available():
        return "trainer.accelerator=cpu"  # the default trainer, with quantized weights on the GPU
    return None if bitsandbytes_cpu_works("4bit") else "no CUDA GPU here"


def test_quantized_training_refused_in_seconds_before_weights_load(cache_dir, tmp_path):
    words = _refusal_expected()
    if words is None:
        pytest.skip("bitsandbytes quantizes on this CPU: 4bit trains here (see the GPU check for a run)")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "model.quantization=4bit",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=cli_env(cache_dir), capture_output=True,
                       text=True, timeout=120)
    took = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "model.quantization=4bit" in errors[0] and words in errors[0], r.stderr[-2000:]
    assert "Loading weights" not in r.stderr and not (tmp_path / "run" / "config.yaml").exists()
    assert took < 60, took


# ---- the CLI on the default model ----------------------------------------------------------------


@pytest.mark.slow
def test_all_linear_dora_cli_run_loads_with_plain_peft_and_a_qlora_record_exports_unquantized(cache_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rolecraft.export import export
    from rolecraft.inference.sources import load_run
    from rolecraft.modeling.base import resolve_model_path

    run = tmp_path / "run"
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "lora.target_modules=all-linear", "lora.use_dora=true",
                        "trainer.max_steps=2", "data.max_eval_samples=2", "eval.generation.max_new_tokens=8",
                        "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"], cwd=REPO, env=cli_env(cache_dir),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    acfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert acfg["use_dora"] and len(acfg["target_modules"]) == 14  # 7 linear kinds x 2 layers
    path = resolve_model_path("embedded:tiny", str(cache_dir))
    ids = torch.tensor([[5, 17, 300, 42, 9]])
    with torch.no_grad():
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), run / "adapter").eval()
        assert any("lora_magnitude_vector" in n for n, _ in tuned.named_parameters())
        a = tuned(input_ids=ids).logits
        ours = load_run(run, str(cache_dir)).model(input_ids=ids).logits
    assert torch.allclose(a, ours, atol=1e-5)

    # the same run recorded as QLoRA: its adapter merges into the unquantized base, with no bitsandbytes
    cfg = OmegaConf.load(run / "config.yaml")
    cfg.model.quantization = "4bit"
    OmegaConf.save(cfg, run / "config.yaml")
    export(str(run), str(tmp_path / "merged"), merge=True, cache_dir=str(cache_dir))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not getattr(merged, "is_loaded_in_4bit", False)
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, a, atol=1e-4)


@pytest.mark.slow
def test_8bit_qlora_trains_on_a_cpu_bitsandbytes_and_merges_into_the_unquantized_base(cache_dir, tmp_path):
    """Runs where the installed bitsandbytes trains 8-bit layers on the CPU (0.50 does; its 4-bit CPU
    path does not, and that refusal is the test above), else skips."""
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed (pip install 'rolecraft[gpu]')")
    import torch

    from rolecraft.modeling.quant import bitsandbytes_cpu_works

    if torch.cuda.is_available() or not bitsandbytes_cpu_works("8bit"):
        pytest.skip("needs a CPU-only machine whose bitsandbytes trains 8-bit layers")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rolecraft.export import export
    from rolecraft.inference.sources import load_run
    from rolecraft.modeling.base import resolve_model_path

    run = tmp_path / "run"
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "model.quantization=8bit", "trainer.max_steps=2",
                        "data.max_eval_samples=2", "eval.generation.max_new_tokens=8", "trainer.enable_progress_bar=false",
                        f"hydra.run.dir={run}"], cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    trained = load_run(run, str(cache_dir))  # as the run trained: quantized
    assert any(type(m).__name__ == "Linear8bitLt" for m in trained.model.modules())
    export(str(run), str(tmp_path / "merged"), merge=True, cache_dir=str(cache_dir))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("8bit" in type(m).__name__ for m in merged.modules())
    base = resolve_model_path("embedded:tiny", str(cache_dir))
    ids = torch.tensor([[5, 17, 300, 42, 9]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), run / "adapter").eval()(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, want, atol=1e-4)
