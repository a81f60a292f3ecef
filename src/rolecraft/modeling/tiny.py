"""The embedded default base model: a tiny Qwen2-shaped causal LM with a byte-level BPE tokenizer
trained on the demo corpus. Built deterministically on first use and saved with save_pretrained,
so it loads through exactly the same AutoModelForCausalLM / AutoTokenizer path as a hub model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

from rolecraft.fileio import atomic_dir

EMBEDDED_PREFIX = "embedded:"
BUILDER_VERSION = 1
ARCH = dict(
    hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, rope_theta=10000.0,
)
VOCAB_SIZE = 4096
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as Qwen uses it: the prompt is everything up to "<|im_start|>assistant\n".
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def demo_corpus() -> list[str]:
    """Every text of the demo dataset, in file order (the tokenizer's training corpus)."""
    from rolecraft.data import resolve_data_root

    root = resolve_data_root("embedded:demo")
    texts: list[str] = []
    for name in ("characters.jsonl", "script.jsonl", "samples.jsonl"):
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.extend(_strings(json.loads(line)))
    return texts


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (_strings(k) + _strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _fingerprint(corpus: list[str]) -> str:
    h = hashlib.sha256(json.dumps({"v": BUILDER_VERSION, "arch": ARCH, "vocab": VOCAB_SIZE,
                                   "template": CHAT_TEMPLATE}, sort_keys=True).encode())
    for t in corpus:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def build(out: Path, corpus: list[str], seed: int = 0) -> None:
    """Train the tokenizer and initialise the model (seeded) into ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token=None, unk_token=None, chat_template=CHAT_TEMPLATE, padding_side="right",
        model_max_length=ARCH["max_position_embeddings"],
    )
    config = Qwen2Config(
        vocab_size=VOCAB_SIZE, bos_token_id=None,
        eos_token_id=hf_tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=hf_tok.convert_tokens_to_ids("<|endoftext|>"), **ARCH,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)


def ensure_embedded(name: str, cache_dir: str | Path) -> Path:
    """Path of the embedded model ``name`` (only "tiny"), building it once per corpus version.

    A file lock makes concurrent builders (DDP ranks, parallel tests) wait for one build.
    """
    if name != "tiny":
        raise ValueError(f"unknown embedded model {name!r}; the only one is 'embedded:tiny'")
    corpus = demo_corpus()
    cache = Path(cache_dir).expanduser() / "embedded"
    target = cache / f"tiny-{_fingerprint(corpus)}"
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            with atomic_dir(target) as tmp:
                build(tmp, corpus)
    return target
