"""Architecture twins (model.tiny=true): every native preset's architecture, tokens, chat template and
LoRA targets, built offline, and the whole train -> generate -> export --merge -> reload -> chat path on it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, cli_env, read_metrics

from rolecraft.errors import ConfigError
from rolecraft.modeling.twins import REMOTE_CODE, TWINS, ensure_twin, load_preset, twin_fingerprint, twin_spec

NATIVE = sorted(TWINS)
PRESETS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


def test_every_preset_is_either_a_twin_or_named_remote_code():
    # a new preset file must say which it is (and the README's model table with it)
    assert set(PRESETS) - {"tiny"} == set(TWINS) | set(REMOTE_CODE)
    for name in REMOTE_CODE:
        assert load_preset(name).trust_remote_code, name
    for name in TWINS:
        assert not load_preset(name).trust_remote_code, name
    assert {"qwen2_5_7b", "llama3_8b", "glm4_9b", "qwen3_8b", "glm4_0414_9b", "llama3_1_8b"} <= set(TWINS)


@pytest.mark.parametrize("name", sorted(REMOTE_CODE))
def test_remote_code_presets_refuse_a_twin_in_one_line(name):
    with pytest.raises(ConfigError) as e:
        twin_spec(_with(load_preset(name), tiny=True))
    msg = str(e.value)
    assert "\n" not in msg and "remote code" in msg and REMOTE_CODE[name] in msg and "glm4_9b" in msg


def _with(cfg, **kw):
    from omegaconf import OmegaConf

    return OmegaConf.merge(cfg, kw)


def test_remote_code_twin_refused_by_the_cli_before_anything_loads(cache_dir, tmp_path):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "model=internlm2_5_7b", "model.tiny=true",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=cli_env(cache_dir), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "model=internlm2_5_7b is remote code" in lines[0] and "InternLM2ForCausalLM" in lines[0]
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before the run was written
    assert time.perf_counter() - t0 < 60


@pytest.fixture(scope="module")
def twins(cache_dir) -> dict[str, Path]:
    return {name: ensure_twin(_with(load_preset(name), tiny=True), cache_dir) for name in NATIVE}


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.slow
def test_twin_keeps_the_real_architecture_and_head_layout(name, twins):
    import transformers
    from transformers import AutoConfig

    spec = TWINS[name]
    cfg = AutoConfig.from_pretrained(twins[name])
    assert cfg.architectures == [spec.architecture] and type(cfg).__name__ == spec.config_class
    real = spec.real
    assert cfg.num_hidden_layers == 2 and cfg.hidden_size <= 256
    # grouped-query attention stays grouped, at the real grouping up to 8 query heads per KV head
    group = real["num_attention_heads"] // real["num_key_value_heads"]
    assert cfg.num_attention_heads // cfg.num_key_value_heads == min(group, 8) > 1
    assert cfg.rope_parameters["rope_theta"] == real["rope_parameters"]["rope_theta"]
    assert cfg.rope_parameters.get("partial_rotary_factor") == real["rope_parameters"].get("partial_rotary_factor")
    if name.startswith("glm4"):
        assert cfg.rope_parameters["partial_rotary_factor"] == 0.5 and cfg.attention_bias
    if name == "llama3_1_8b":
        assert cfg.rope_parameters["rope_type"] == "llama3" and cfg.rope_parameters["factor"] == 8.0
    model = getattr(transformers, spec.architecture).from_pretrained(twins[name])
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert set(load_preset(name).lora_targets) <= names  # the preset's LoRA targets exist in the class
    if name == "qwen3_8b":
        assert {"q_norm", "k_norm"} <= names
    if name == "glm4_0414_9b":
        assert {"post_self_attn_layernorm", "post_mlp_layernorm"} <= names
    if name == "qwen2_5_7b":
        assert model.model.layers[0].self_attn.q_proj.bias is not None
    from rolecraft.modeling.capabilities import accepts_logits_to_keep, is_native_transformers
    from rolecraft.modeling.lit_module import packed_rows_are_isolated

    # the fast paths are open to it: packing keeps samples apart, logits_to_keep, own generation loops
    assert packed_rows_are_isolated(model) and accepts_logits_to_keep(model) and is_native_transformers(model)


@pytest.mark.parametrize("name", NATIVE)
def test_twin_tokenizer_carries_the_presets_tokens_and_template(name, twins):
    from transformers import AutoTokenizer

    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.modeling.base import stop_token_ids

    preset = load_preset(name)
    tok = AutoTokenizer.from_pretrained(twins[name])
    for t in (*TWINS[name].special_tokens, *preset.stop_tokens):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t, t  # one token, never split
    stops = stop_token_ids(tok, preset)
    assert len(stops) == len(set([tok.eos_token_id, *tok.convert_tokens_to_ids(list(preset.stop_tokens))]))
    chat = [{"role": "system", "content": "你是罗火旺。"}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "老板好！"}]
    enc = ChatEncoder(tok, 256, 64, preset.chat_template, end_ids=stops)
    row = enc.encode(chat)
    answer = [t for t, lab in zip(row.input_ids, row.labels) if lab != -100]
    # the answer is learnt with a token that ends the turn, so generation learns to stop
    assert set(answer) & set(stops), tok.decode(answer)
    assert "老板好！" in tok.decode(answer)
    prompt = tok.decode(enc.prompt_ids(chat[:-1]))
    first = {"glm4_9b": "[gMASK]<sop><|system|>\n", "glm4_0414_9b": "[gMASK]<sop><|system|>\n",
             "qwen2_5_7b": "<|im_start|>system\n", "qwen3_8b": "<|im_start|>system\n",
             "llama3_8b": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n",
             "llama3_1_8b": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date"}
    last = {"glm4_9b": "<|user|>\n你好<|assistant|>", "glm4_0414_9b": "<|user|>\n你好<|assistant|>",
            "qwen2_5_7b": "<|im_start|>assistant\n", "qwen3_8b": "<|im_start|>assistant\n<think>\n\n</think>\n\n",
            "llama3_8b": "<|start_header_id|>assistant<|end_header_id|>\n\n",
            "llama3_1_8b": "<|start_header_id|>assistant<|end_header_id|>\n\n"}
    assert prompt.startswith(first[name]) and prompt.endswith(last[name]), prompt
    assert tok.decode(answer, skip_special_tokens=True).strip() == "老板好！"


@pytest.mark.parametrize("name", NATIVE)
def test_continuous_batching_on_each_twin_matches_one_prompt_at_a_time(name, twins):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rolecraft.config import GenerationConfig
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.inference.generate import generate
    from rolecraft.modeling.base import stop_token_ids

    preset = load_preset(name)
    tok = AutoTokenizer.from_pretrained(twins[name])
    model = AutoModelForCausalLM.from_pretrained(twins[name], dtype=torch.float32)
    enc = ChatEncoder(tok, 256, 0, preset.chat_template)
    system = "你是罗火旺，火锅店老板，说话直爽。"
    prompts = [enc.prompt_ids([{"role": "system", "content": system}, {"role": "user", "content": q}])
               for q in ("你好", "今天生意怎么样？", "你儿子在哪里读书？", "火锅底料怎么炒？", "你喜欢吃什么")]
    stops = stop_token_ids(tok, preset)
    fast = generate(model, tok, prompts, GenerationConfig(max_new_tokens=10), stops, batch_size=3)
    alone = generate(model, tok, prompts, GenerationConfig(max_new_tokens=10, share_prefix=False, drop_finished=False,
                                                           continuous=False), stops, batch_size=1)
    assert fast == alone


def test_twins_are_cached_by_fingerprint(cache_dir, twins):
    preset = _with(load_preset("qwen2_5_7b"), tiny=True)
    first = twins["qwen2_5_7b"]
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_twin(preset, cache_dir) == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    other = _with(preset, chat_template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert twin_fingerprint(other) != twin_fingerprint(preset)  # the template is part of what was built
    assert json.loads((first / "rolecraft_twin.json").read_text())["architecture"] == "Qwen2ForCausalLM"


@pytest.mark.slow
def test_the_1b_size_keeps_real_head_dim_grouping_and_vocabulary(tmp_path):
    import torch
    import transformers
    from transformers import AutoConfig

    from rolecraft.modeling.twins import build_twin, twin_config_kwargs

    for name, spec in TWINS.items():
        kw = twin_config_kwargs(spec, 4096, "1b")
        assert kw["head_dim"] == spec.real.get("head_dim", 128) and kw["vocab_size"] == spec.real["vocab_size"]
        assert kw["hidden_size"] == 2048 and kw["num_hidden_layers"] == 16
        with torch.device("meta"):  # counted without allocating
            model = getattr(transformers, spec.architecture)(getattr(transformers, spec.config_class)(**kw))
        assert 1.0e9 < sum(p.numel() for p in model.parameters()) < 2.0e9, name
    # overrides are applied last (here: a small build, to keep the test light)
    out = build_twin(load_preset("glm4_9b"), tmp_path / "glm", size="1b",
                     overrides={"num_hidden_layers": 1, "vocab_size": 8192}, dtype="bfloat16")
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.head_dim == 128 and cfg.num_hidden_layers == 1 and cfg.hidden_size == 2048 and cfg.vocab_size == 8192
    assert cfg.num_attention_heads // cfg.num_key_value_heads == 16  # GLM-4's real grouping
    assert json.loads((out / "rolecraft_twin.json").read_text())["size"] == "1b"


# ---- the whole path, once per native preset --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NATIVE)
def test_twin_trains_generates_exports_merges_and_chats(name, cache_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rolecraft.export import export
    from rolecraft.inference.sources import load_run

    run = tmp_path / "run"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(REPO / "train.py"), f"model={name}", "model.tiny=true", "trainer.max_steps=2",
                        "data.max_eval_samples=4", "eval.generation.max_new_tokens=8", "trainer.enable_progress_bar=false",
                        "trainer.val_check_interval=null", f"hydra.run.dir={run}"], cwd=REPO, env=cli_env(cache_dir),
                       capture_output=True, text=True, timeout=600)
    train_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert "padded micro-batches instead" not in r.stderr  # the packing probe let it pack
    m = read_metrics(run)
    assert m["train/steps"] == 2 and 0 <= m["test/rouge_l/avg"] <= 1 and m["test/n/spe"] == 4
    acfg = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert set(acfg["target_modules"]) == set(load_preset(name).lora_targets)
    assert acfg["base_model_name_or_path"] == f"twin:{name}"

    merged = tmp_path / "merged"
    export(str(run), str(merged), merge=True, cache_dir=str(cache_dir))
    reloaded = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(merged)
    assert type(reloaded).__name__ == TWINS[name].architecture
    trained = load_run(run, str(cache_dir))
    ids = torch.tensor([tok("你好，老板", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a = trained.model.float()(input_ids=ids).logits
        b = reloaded(input_ids=ids).logits
    assert torch.allclose(a, b, atol=2e-2, rtol=0), (a - b).abs().max()  # the merge is the adapter, folded in

    # --adapter: plain peft finds the base from adapter_config.json (the twin's directory)
    from peft import AutoPeftModelForCausalLM

    export(str(run), str(tmp_path / "adapter"), merge=False, cache_dir=str(cache_dir))
    plain = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter", dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(plain(input_ids=ids).logits, a, atol=2e-2, rtol=0)

    from hydra import compose, initialize_config_dir

    import rolecraft.config
    from rolecraft.chat import Session
    from rolecraft.paths import config_dir

    rolecraft.config.register()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("chat", overrides=[f"run={run}", f"paths.cache_dir={cache_dir}", "paths.output_dir=.",
                                         "generation.max_new_tokens=6"])
    session = Session(cfg)
    import io

    session.reply("你好", io.StringIO())
    assert [m["role"] for m in session.history] == ["user", "assistant"]
    print(f"{name}: train.py {train_s:.1f}s, fit {m['train/fit_seconds']}s")


def test_config_checks_of_twins_and_quantization_stay_torch_free(cache_dir):
    code = """
import sys
from hydra import compose, initialize_config_dir
import rolecraft.config
from rolecraft.config_checks import check_train
from rolecraft.errors import ConfigError
from rolecraft.paths import config_dir
rolecraft.config.register("train_schema")
with initialize_config_dir(config_dir(), version_base="1.3"):
    ok = compose("train", overrides=["paths.output_dir=.", "model=glm4_9b", "model.tiny=true",
                                     "lora.target_modules=all-linear", "lora.use_dora=true"])
    bad = compose("train", overrides=["paths.output_dir=.", "model=baichuan2_7b", "model.tiny=true"])
check_train(ok)
try:
    check_train(bad)
    raise SystemExit("no error")
except ConfigError as e:
    assert "remote code" in str(e)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "peft", "lightning"))
assert not heavy, heavy
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
