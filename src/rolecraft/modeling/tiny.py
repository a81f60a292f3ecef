"""The embedded default base model: a tiny Qwen2-shaped causal LM with a byte-level BPE tokenizer,
both trained on the demo corpus, saved with save_pretrained, so it loads through exactly the same
AutoModelForCausalLM / AutoTokenizer path as a hub model.

It ships with the package (``embedded/tiny/``, 3.5 MB, with ``build.json``: the recipe fingerprint,
the build environment, the model's loss on the recipe and a sha256 per file), so a fresh machine
trains within seconds and every machine starts from the same weights. The build is seeded, but its
400 pretraining steps are bit-identical only on the same CPU kernels, thread count and library
versions (elsewhere the weights drift by a few percent and the loss by a few tenths of a percent). ``python -m rolecraft.modeling.tiny --ship`` rebuilds the shipped
copy; a changed recipe or demo corpus no longer matches the shipped fingerprint, and the model is
then built on first use into the cache, as before.

Like a real chat base, it is briefly pretrained — full-parameter next-token prediction — on the
demo's *training* split only: profiles and script lines as plain text, and the plain (raw)
answers to the train-split general instructions in the chat format with a generic assistant
system prompt. So, untrained, it answers like a plain assistant (RAW-style), and what LoRA
fine-tuning adds is the role-play: speaking style (CUS) and character knowledge (SPE). The test
split is never seen. The tokenizer is trained on all train-split text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

from rolecraft.fileio import atomic_dir

log = logging.getLogger("rolecraft")

EMBEDDED_PREFIX = "embedded:"
SHIPPED = Path(__file__).resolve().parent / "embedded" / "tiny"
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "chat_template.jinja")
BUILDER_VERSION = 4
PRETRAIN = dict(steps=400, seq_len=640, batch_size=2, lr=3e-3, warmup=20, seed=0, chat_repeats=4)
GENERIC_SYSTEM = "你是一个乐于助人的助手。"
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


def demo_corpus() -> tuple[list[str], list[str]]:
    """(tokenizer texts, pretraining documents) from the demo's train split, in file order."""
    from rolecraft.data import resolve_data_root
    from rolecraft.data.prompts import render_profile
    from rolecraft.data.schema import load

    ds = load(resolve_data_root("embedded:demo"))
    plain = [render_profile(c.profile) for c in ds.characters.values()]
    plain += [f"{u.speaker}：{u.text}" for u in ds.script]
    vocab = plain + [t for s in ds.samples if s.split == "train" for t in (s.instruction, *s.references)]
    raw = dict.fromkeys((s.instruction, s.references[0]) for s in ds.samples if s.split == "train" and s.kind == "raw")
    chats = [f"<|im_start|>system\n{GENERIC_SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
             f"<|im_start|>assistant\n{a}<|im_end|>\n" for q, a in raw]
    return vocab, plain + chats * PRETRAIN["chat_repeats"]


def _fingerprint(corpus: tuple[list[str], list[str]]) -> str:
    h = hashlib.sha256(json.dumps({"v": BUILDER_VERSION, "arch": ARCH, "vocab": VOCAB_SIZE,
                                   "template": CHAT_TEMPLATE, "pretrain": PRETRAIN}, sort_keys=True).encode())
    for t in corpus[0] + corpus[1]:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def build(out: Path, corpus: tuple[list[str], list[str]], seed: int = 0) -> None:
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
    vocab_texts, documents = corpus
    tok.train_from_iterator(vocab_texts, trainer=trainer)
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
    with torch.random.fork_rng(devices=[]):  # building must not move the caller's RNG
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        pretrain(model, hf_tok, documents)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)


def pretrain(model, tok, documents: list[str]) -> None:
    """Full-parameter next-token training on the shuffled, concatenated documents (seeded)."""
    import torch

    p = PRETRAIN
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    gen = torch.Generator().manual_seed(p["seed"])
    order = torch.randperm(len(documents), generator=gen).tolist()
    stream: list[int] = []
    for text in (documents[i] for i in order):
        stream.extend(tok(text, add_special_tokens=False)["input_ids"])
        stream.append(eos)
    n = (len(stream) - 1) // p["seq_len"]
    if n == 0:
        return
    data = torch.tensor(stream[: n * p["seq_len"] + 1])
    inputs = data[:-1].view(n, p["seq_len"])
    targets = data[1:].view(n, p["seq_len"])
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / p["warmup"]) * (0.55 + 0.45 * math.cos(math.pi * s / p["steps"])))
    model.train()
    from rolecraft.console import progress

    for _ in progress(range(p["steps"]), desc="pretrain the embedded tiny model", unit="step"):
        idx = torch.randint(0, n, (p["batch_size"],), generator=gen)
        logits = model(input_ids=inputs[idx]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets[idx].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def recipe_loss(model_dir: str | Path, stride: int = 40) -> float:
    """Mean next-token loss of a built model on every ``stride``-th pretraining document: the
    check that a rebuild on another machine is the same model when its bytes cannot be (a
    trained build scores about 1.87, an untrained one above 8)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for text in demo_corpus()[1][::stride]:
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            if ids.shape[1] < 2:
                continue
            total += model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return total / count


def build_environment() -> dict:
    """What decides the bytes of a build besides the recipe: library versions, the CPU kernels
    torch picks (AVX2, AVX512 …) and its thread count (reductions split per thread)."""
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_record() -> dict | None:
    """build.json of the shipped copy (fingerprint, per-file sha256), or None when absent."""
    try:
        return json.loads((SHIPPED / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_embedded(name: str, cache_dir: str | Path) -> Path:
    """Path of the embedded model ``name`` (only "tiny"): the shipped copy when it was built from
    this recipe and corpus, else a build in the cache (once per fingerprint).

    A file lock makes concurrent builders (DDP ranks, parallel tests) wait for one build.
    """
    if name != "tiny":
        raise ValueError(f"unknown embedded model {name!r}; the only one is 'embedded:tiny'")
    corpus = demo_corpus()
    fingerprint = _fingerprint(corpus)
    rec = shipped_record()
    if rec is not None and rec.get("fingerprint") == fingerprint:
        return SHIPPED
    cache = Path(cache_dir).expanduser() / "embedded"
    target = cache / f"tiny-{fingerprint}"
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(cache / ".lock")):
        if not (target / "config.json").is_file():
            log.warning("building the embedded tiny model into %s (the recipe or the demo corpus differs from the "
                        "shipped copy; about a minute on a laptop CPU, once)", target)
            with atomic_dir(target, writer="rolecraft embedded model", what="model cache") as tmp:
                build(tmp, corpus)
    return target


def ship(dest: Path = SHIPPED) -> dict:
    """Rebuild the shipped copy (``python -m rolecraft.modeling.tiny --ship``) with its build.json."""
    import shutil
    import tempfile

    corpus = demo_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), corpus)
        rec = {"fingerprint": _fingerprint(corpus), "builder_version": BUILDER_VERSION,
               "built_with": build_environment(), "recipe_loss": round(recipe_loss(tmp), 6),
               "sha256": {f: _sha256(Path(tmp) / f) for f in SHIPPED_FILES}}
        dest.mkdir(parents=True, exist_ok=True)
        for f in SHIPPED_FILES:
            shutil.copyfile(Path(tmp) / f, dest / f)
    (dest / "build.json").write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    return rec


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Rebuild the embedded tiny model shipped with the package.")
    ap.add_argument("--ship", action="store_true", help="rebuild src/rolecraft/modeling/embedded/tiny and build.json")
    args = ap.parse_args()
    if not args.ship:
        ap.error("nothing to do: pass --ship")
    print(json.dumps(ship(), indent=2))
