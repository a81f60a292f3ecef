"""Architecture twins: a random-weight miniature of a model preset's exact architecture, built offline.

``model=glm4_9b model.tiny=true`` trains, generates, exports and chats on a model of transformers'
own ``GlmForCausalLM`` class with GLM-4's head layout (grouped-query attention, half-rotary heads,
qkv bias), GLM-4's special tokens and chat format and the preset's LoRA targets and stop tokens —
2 layers and a hidden size of a few hundred, so the whole path of a real 9B run takes seconds on a
CPU. Nothing is downloaded: the model comes from the architecture's config class (``GlmConfig``
...), seeded, and the tokenizer is a byte-level BPE trained with ``tokenizers`` on the demo corpus
plus the preset's special tokens.

Public API (also used by the GPU check to build a larger random model of a real architecture):

- :func:`build_twin` ``(preset_cfg, out_dir, size="tiny", overrides=None, seed=0) -> Path``: write a
  ``save_pretrained`` model + tokenizer directory;
- :func:`ensure_twin` ``(preset_cfg, cache_dir, size="tiny") -> Path``: the same, cached under
  ``<cache_dir>/twins/<preset>-<size>-<fingerprint>`` (built once per fingerprint, under a file lock);
- :func:`twin_spec` ``(preset_cfg) -> TwinSpec``: the table row, or a one-line ConfigError for
  remote-code and unknown presets; :func:`load_preset` ``(name)``: ``conf/model/<name>.yaml`` composed
  on the schema (for callers outside Hydra).

``size`` is ``"tiny"`` (2 layers, head_dim 16, at most 2 KV heads; vocabulary = the small
tokenizer's) or ``"1b"`` (16 layers, hidden 2048, the real head_dim, grouping and vocabulary size:
1.4-1.8B parameters, for GPU throughput and memory checks; pass ``dtype="bfloat16"``), and ``overrides`` are config keys set
last (e.g. ``{"num_hidden_layers": 4}``). The ``"1b"`` size keeps the real vocabulary size, so
the output head costs what it costs in the real model, but its tokenizer still has 4,096 tokens:
a random model samples ids beyond it, which decode to nothing. Compare generated token ids there,
not text, or pass ``overrides={"vocab_size": 4096}``.

A preset is matched by ``model.name`` (the file name under ``conf/model/``). Import cost: the
standard library only; torch, transformers and tokenizers load inside the builders.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from rolecraft.errors import ConfigError

log = logging.getLogger("rolecraft")

TWIN_BUILDER_VERSION = 1
TOKENIZER_VOCAB = 4096
SIZES = ("tiny", "1b")

# ---- chat templates, written from each family's documented conversation format ---------------
# (the role tokens and where the newlines go; tools, images and reasoning traces are not rendered)

# No whitespace control ({%- -%}) anywhere: it would also eat the format's own newlines.

# ChatML with Qwen2.5's default system line when a chat has none
QWEN2_5_TEMPLATE = (
    "{% for m in messages %}"
    "{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3 in non-thinking mode (what role-play wants: no reasoning trace before the line): ChatML, and an
# answer after the last user turn opens with an empty think block, as enable_thinking=False renders it
QWEN3_NOTHINK_TEMPLATE = (
    "{% set ns = namespace(last_user=-1) %}"
    "{% for m in messages %}{% if m['role'] == 'user' %}{% set ns.last_user = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in messages %}"
    "<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and loop.index0 > ns.last_user %}<think>\n\n</think>\n\n{% endif %}"
    "{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}"
)

# GLM-4: [gMASK]<sop>, then each turn as <|role|>\n text; the prompt ends at <|assistant|> (the model
# writes the newline) and an answer has no closing token of its own (the next <|user|> ends it)
GLM4_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# Llama 3: header tokens around the role, a blank line, the trimmed text, <|eot_id|>
LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# Llama 3.1: as Llama 3, and the system turn always opens with the knowledge-cutoff and date lines
LLAMA3_1_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] | trim %}{% set rest = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set rest = messages %}{% endif %}"
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{{ system }}<|eot_id|>"
    "{% for m in rest %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@dataclass(frozen=True)
class TwinSpec:
    """One architecture: what the real checkpoint's config.json says about its shape, and its tokens."""

    architecture: str  # the transformers class of the real checkpoint
    config_class: str  # its config class in transformers
    # published config.json values that shape the network (sizes are scaled down, the rest kept)
    real: Mapping[str, Any]
    special_tokens: tuple[str, ...]  # the preset's special tokens, in vocabulary order
    eos: str  # the tokenizer's eos
    pad: str | None
    bos: str | None
    model_eos: tuple[str, ...]  # config.json / generation_config eos ids, as tokens
    chat_template: str  # used when the preset sets no model.chat_template
    template_source: str  # where the format is documented
    # added tokens that decode as text (Qwen3's <think>/</think> are not special)
    plain_added: tuple[str, ...] = ()
    # the layout quirks the twin keeps, for readers
    notes: str = ""


_GLM_TOKENS = ("<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
               "<|assistant|>", "<|observation|>")
_GLM_REAL = dict(hidden_size=4096, intermediate_size=13696, num_hidden_layers=40, num_attention_heads=32,
                 num_key_value_heads=2, head_dim=128, attention_bias=True, hidden_act="silu",
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
                 rms_norm_eps=1.5625e-07, vocab_size=151552, tie_word_embeddings=False)
_QWEN_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>")
_LLAMA3_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_LLAMA3_REAL = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=128, hidden_act="silu", attention_bias=False, mlp_bias=False,
                    rms_norm_eps=1e-05, vocab_size=128256, tie_word_embeddings=False,
                    rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, max_position_embeddings=8192)

TWINS: dict[str, TwinSpec] = {
    "glm4_9b": TwinSpec(
        "GlmForCausalLM", "GlmConfig", {**_GLM_REAL, "max_position_embeddings": 131072},
        _GLM_TOKENS, eos="<|endoftext|>", pad="<|endoftext|>", bos=None,
        model_eos=("<|endoftext|>", "<|user|>", "<|observation|>"),
        chat_template=GLM4_TEMPLATE, template_source="GLM-4-9B-chat model card / ChatGLM technical report"),
    "glm4_0414_9b": TwinSpec(
        "Glm4ForCausalLM", "Glm4Config", {**_GLM_REAL, "max_position_embeddings": 32768, "rms_norm_eps": 1e-05},
        _GLM_TOKENS, eos="<|endoftext|>", pad="<|endoftext|>", bos=None,
        model_eos=("<|endoftext|>", "<|user|>", "<|observation|>"),
        chat_template=GLM4_TEMPLATE, template_source="GLM-4-0414 model card (the GLM-4 conversation format)",
        notes="sandwich norms: post-attention and post-MLP RMSNorm in every layer"),
    "qwen2_5_7b": TwinSpec(
        "Qwen2ForCausalLM", "Qwen2Config",
        dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
             num_key_value_heads=4, hidden_act="silu", rms_norm_eps=1e-06, vocab_size=152064,
             tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
             max_position_embeddings=32768),
        _QWEN_TOKENS, eos="<|im_end|>", pad="<|endoftext|>", bos=None, model_eos=("<|im_end|>", "<|endoftext|>"),
        chat_template=QWEN2_5_TEMPLATE, template_source="Qwen2.5 model card (ChatML)",
        notes="bias on q/k/v projections; 7 query heads per KV head"),
    "qwen3_8b": TwinSpec(
        "Qwen3ForCausalLM", "Qwen3Config",
        dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
             num_key_value_heads=8, head_dim=128, hidden_act="silu", attention_bias=False, rms_norm_eps=1e-06,
             vocab_size=151936, tie_word_embeddings=False, max_position_embeddings=40960,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        _QWEN_TOKENS, eos="<|im_end|>", pad="<|endoftext|>", bos=None, model_eos=("<|im_end|>", "<|endoftext|>"),
        chat_template=QWEN3_NOTHINK_TEMPLATE, template_source="Qwen3 model card (ChatML, enable_thinking=False)",
        plain_added=("<think>", "</think>"), notes="RMSNorm on queries and keys per head"),
    "llama3_8b": TwinSpec(
        "LlamaForCausalLM", "LlamaConfig", _LLAMA3_REAL, _LLAMA3_TOKENS, eos="<|eot_id|>", pad=None,
        bos="<|begin_of_text|>", model_eos=("<|end_of_text|>", "<|eot_id|>"),
        chat_template=LLAMA3_TEMPLATE, template_source="Meta Llama 3 model card (prompt format)"),
    "llama3_1_8b": TwinSpec(
        "LlamaForCausalLM", "LlamaConfig",
        {**_LLAMA3_REAL, "max_position_embeddings": 131072,
         "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
        (*_LLAMA3_TOKENS, "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"),
        eos="<|eot_id|>", pad=None, bos="<|begin_of_text|>",
        model_eos=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        chat_template=LLAMA3_1_TEMPLATE, template_source="Meta Llama 3.1 model card (prompt format)",
        notes="llama3 rope scaling (factor 8 over 8,192 original positions)"),
}

# presets whose architecture exists only as remote code on the hub (no class in transformers to build from)
REMOTE_CODE: dict[str, str] = {
    "chatglm3_6b": "ChatGLMForConditionalGeneration",
    "baichuan2_7b": "BaichuanForCausalLM",
    "internlm2_5_7b": "InternLM2ForCausalLM",
}


def _get(cfg, key: str, default=None):
    """A key of a DictConfig, dataclass or dict, with a default for run records written before it existed."""
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    if hasattr(cfg, "get") and not hasattr(cfg, "__dataclass_fields__"):
        try:
            return cfg.get(key, default)
        except Exception:  # noqa: BLE001 - a struct config without the key
            return default
    return getattr(cfg, key, default)


def wants_twin(model_cfg) -> bool:
    """``model.tiny=true`` on a preset of a real base (on the embedded model, already tiny, it changes nothing)."""
    return bool(_get(model_cfg, "tiny", False)) and not str(_get(model_cfg, "name_or_path", "")).startswith("embedded:")


def twin_spec(model_cfg) -> TwinSpec:
    """The twin table's row for ``model_cfg.name``; a one-line ConfigError where none can exist."""
    name = str(_get(model_cfg, "name", ""))
    if name in TWINS:
        return TWINS[name]
    natives = ", ".join(sorted(TWINS))
    if name in REMOTE_CODE or _get(model_cfg, "trust_remote_code", False):
        arch = REMOTE_CODE.get(name, "its architecture")
        raise ConfigError(f"model.tiny=true: model={name} is remote code ({arch} lives in the checkpoint's own Python "
                          f"files, which transformers does not ship), so no twin can be built offline; test with a "
                          f"native preset ({natives}) or run the real weights with model.tiny=false")
    raise ConfigError(f"model.tiny=true: no twin recipe for model.name={name!r}; twins exist for {natives} "
                      "(rolecraft.modeling.twins.TWINS)")


def load_preset(name: str):
    """``conf/model/<name>.yaml`` merged onto the ModelConfig schema (outside Hydra, e.g. for benchmarks)."""
    from omegaconf import OmegaConf

    from rolecraft.config import ModelConfig
    from rolecraft.paths import config_dir

    path = Path(config_dir()) / "model" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"model={name}: no preset {path}; presets: {', '.join(known)}")
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))


# ---- the scaled-down configuration -------------------------------------------------------------


def _round(x: float, to: int) -> int:
    return max(to, int(round(x / to)) * to)


def _ceil(x: int, to: int) -> int:
    return -(-x // to) * to


def twin_config_kwargs(spec: TwinSpec, tokenizer_vocab: int, size: str = "tiny",
                       overrides: Mapping[str, Any] | None = None) -> dict:
    """Config-class keyword arguments: the real ones, with the sizes scaled down.

    The query heads per KV head (GQA grouping) are kept up to 8 (GLM-4's 16 becomes 8), rope
    settings (theta, GLM's partial rotary factor, Llama 3.1's scaling) are copied, and the MLP keeps
    the real ratio of intermediate to hidden size.
    """
    if size not in SIZES:
        raise ConfigError(f"twin size={size!r}: use one of {', '.join(SIZES)}")
    real = dict(spec.real)
    heads, kv = real["num_attention_heads"], real["num_key_value_heads"]
    group = max(1, heads // kv)
    mlp_ratio = real["intermediate_size"] / real["hidden_size"]
    kw = {k: v for k, v in real.items()}
    if size == "tiny":
        head_dim = 16
        n_kv = min(kv, 2)
        n_heads = n_kv * min(group, 8)
        hidden = n_heads * head_dim
        kw.update(num_hidden_layers=2, num_attention_heads=n_heads, num_key_value_heads=n_kv, hidden_size=hidden,
                  intermediate_size=_round(hidden * mlp_ratio, 16), vocab_size=_ceil(tokenizer_vocab, 64))
    else:  # "1b": real head_dim, grouping and vocabulary; fewer, narrower layers
        head_dim = real.get("head_dim") or real["hidden_size"] // heads
        hidden = 2048
        n_heads = hidden // head_dim
        n_kv = max(1, n_heads // group)
        kw.update(num_hidden_layers=16, num_attention_heads=n_heads, num_key_value_heads=n_kv, hidden_size=hidden,
                  intermediate_size=_round(hidden * mlp_ratio, 128), vocab_size=max(real["vocab_size"], tokenizer_vocab))
    kw["head_dim"] = head_dim  # explicit even where the real config derives it (hidden / heads)
    if "layer_types" not in kw and spec.config_class in ("Qwen2Config", "Qwen3Config"):
        kw["layer_types"] = ["full_attention"] * kw["num_hidden_layers"]
    kw.update(overrides or {})
    if "num_hidden_layers" in (overrides or {}) and "layer_types" in kw and "layer_types" not in (overrides or {}):
        kw["layer_types"] = ["full_attention"] * kw["num_hidden_layers"]
    return kw


# ---- building ------------------------------------------------------------------------------------


def _template_of(preset_cfg, spec: TwinSpec) -> str:
    return _get(preset_cfg, "chat_template") or spec.chat_template


def _stop_tokens(preset_cfg) -> list[str]:
    return [str(t) for t in (_get(preset_cfg, "stop_tokens") or [])]


def _tokens_of(preset_cfg, spec: TwinSpec) -> list[str]:
    """The spec's special tokens, then any stop token of the preset not among them."""
    tokens = list(spec.special_tokens)
    tokens += [t for t in _stop_tokens(preset_cfg) if t not in tokens]
    return tokens


def twin_fingerprint(preset_cfg, size: str = "tiny", overrides: Mapping[str, Any] | None = None,
                     seed: int = 0) -> str:
    """What the built directory depends on: the recipe, the preset's template and tokens, the corpus."""
    from rolecraft.modeling.tiny import demo_corpus

    spec = twin_spec(preset_cfg)
    h = hashlib.sha256(json.dumps({
        "v": TWIN_BUILDER_VERSION, "spec": asdict(spec), "template": _template_of(preset_cfg, spec),
        "tokens": _tokens_of(preset_cfg, spec), "size": size, "overrides": dict(overrides or {}), "seed": seed,
        "vocab": TOKENIZER_VOCAB}, sort_keys=True, default=str).encode())
    for t in demo_corpus()[0]:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _train_tokenizer(preset_cfg, spec: TwinSpec):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from rolecraft.modeling.tiny import demo_corpus

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, special_tokens=_tokens_of(preset_cfg, spec),
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(demo_corpus()[0], trainer=trainer)
    max_len = int(spec.real.get("max_position_embeddings", 32768))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=spec.eos, pad_token=spec.pad, bos_token=spec.bos,
                                 unk_token=None, chat_template=_template_of(preset_cfg, spec), padding_side="right",
                                 model_max_length=max_len)
    if spec.plain_added:
        hf.add_tokens(list(spec.plain_added))
    return hf


def build_twin(preset_cfg, out_dir: str | Path, size: str = "tiny", overrides: Mapping[str, Any] | None = None,
               seed: int = 0, dtype: str = "float32") -> Path:
    """Write a random-weight model of ``preset_cfg``'s architecture and its tokenizer to ``out_dir``.

    ``preset_cfg``: a model preset (``cfg.model``, :func:`load_preset`'s result, or anything with
    ``name``, ``chat_template``, ``stop_tokens``). ``size``: ``"tiny"`` or ``"1b"``; ``overrides``:
    config keys set last. The weights are seeded (``seed``) and saved in ``dtype``. Returns ``out_dir``.
    """
    import torch
    import transformers

    spec = twin_spec(preset_cfg)
    out = Path(out_dir)
    tok = _train_tokenizer(preset_cfg, spec)
    ids = {t: tok.convert_tokens_to_ids(t) for t in (*spec.special_tokens, *spec.plain_added)}
    kw = twin_config_kwargs(spec, len(tok), size, overrides)
    eos_ids = [ids[t] for t in spec.model_eos]
    config = getattr(transformers, spec.config_class)(
        **kw, eos_token_id=eos_ids if len(eos_ids) > 1 else eos_ids[0],
        pad_token_id=ids[spec.pad] if spec.pad else None, bos_token_id=ids[spec.bos] if spec.bos else None)
    config.architectures = [spec.architecture]
    cls = getattr(transformers, spec.architecture)
    with torch.random.fork_rng(devices=[]):  # building must not move the caller's RNG
        torch.manual_seed(seed)
        model = cls(config)
    model.to(getattr(torch, dtype))
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "rolecraft_twin.json").write_text(json.dumps({
        "preset": str(_get(preset_cfg, "name")), "architecture": spec.architecture, "size": size,
        "parameters": n_params, "real": dict(spec.real), "twin": {k: v for k, v in kw.items() if k != "layer_types"},
        "template_source": spec.template_source, "builder_version": TWIN_BUILDER_VERSION,
        "transformers": transformers.__version__}, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def ensure_twin(preset_cfg, cache_dir: str | Path, size: str = "tiny") -> Path:
    """The twin's directory in ``<cache_dir>/twins/``, built on first use (once per fingerprint, under a
    file lock, written atomically)."""
    from filelock import FileLock

    from rolecraft.fileio import atomic_dir

    name = str(_get(preset_cfg, "name"))
    fingerprint = twin_fingerprint(preset_cfg, size)
    cache = Path(cache_dir).expanduser() / "twins"
    target = cache / f"{name}-{size}-{fingerprint}"
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".lock")):
        if not (target / "config.json").is_file():
            log.info("building the %s twin of %s into %s (random weights, no download)", size, name, target)
            with atomic_dir(target, writer="rolecraft twin", what="model cache") as tmp:
                build_twin(preset_cfg, tmp, size)
    return target
