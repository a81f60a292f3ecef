"""Where answers come from: a training run, a local/hub model, an API endpoint, or a file.

Every source returns ``Answers``: a prediction per benchmark item key, a display name, and counts
that belong in metrics (missing, unmatched, API usage, generation time).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rolecraft.errors import ConfigError, DataError
from rolecraft.evaluation.benchmarks import Benchmark, EvalItem

SOURCES = ("run", "model", "openai", "predictions")
FORMATS = ("auto", "rolecraft", "rolebench")


@dataclass
class Answers:
    name: str
    predictions: dict[str, str]
    stats: dict = field(default_factory=dict)


def get_answers(cfg, bench: Benchmark) -> Answers:
    a = cfg.answers
    if a.source not in SOURCES:
        raise ConfigError(f"answers.source={a.source!r}: use one of {', '.join(SOURCES)}")
    return {"run": from_run, "model": from_model, "openai": from_openai,
            "predictions": from_predictions}[a.source](cfg, bench)


# ---- prediction files ------------------------------------------------------------------------


def _row_format(row: dict, fmt: str, where: str) -> str:
    if fmt != "auto":
        return fmt
    if "generated" in row and "role" in row:
        return "rolebench"
    if "prediction" in row:
        return "rolecraft"
    raise DataError(f"{where}: cannot tell the format: expected rolecraft's 'prediction' field or RoleBench's "
                    "'role'/'question'/'generated'; set answers.format")


def read_prediction_file(path: Path, fmt: str = "auto") -> list[tuple[str, dict]]:
    """(where, {key?, character?, question?, prediction}) rows of a predictions file, any format."""
    from rolecraft.fileio import read_jsonl

    if fmt not in FORMATS:
        raise ConfigError(f"answers.format={fmt!r}: use one of {', '.join(FORMATS)}")
    out = []
    for line, row in read_jsonl(path):
        where = f"{path}:{line}"
        kind = _row_format(row, fmt, where)
        if kind == "rolebench":
            gen = row.get("generated")
            if not isinstance(gen, list) or not gen or not isinstance(gen[0], str):
                raise DataError(f"{where}: 'generated' must be a non-empty list whose first element is the prediction")
            if not isinstance(row.get("role"), str) or not isinstance(row.get("question"), str):
                raise DataError(f"{where}: RoleBench rows need string 'role' and 'question'")
            out.append((where, {"character": row["role"], "question": row["question"], "prediction": gen[0]}))
        else:
            pred = row.get("prediction")
            if not isinstance(pred, str):
                raise DataError(f"{where}: 'prediction' must be a string, got {type(pred).__name__}")
            question = row.get("question", row.get("instruction"))
            out.append((where, {"key": row.get("key", row.get("id")), "character": row.get("character"),
                                "question": question, "prediction": pred}))
    if not out:
        raise DataError(f"{path}: no predictions (empty file)")
    return out


def join_predictions(rows: list[tuple[str, dict]], bench: Benchmark, source: str,
                     allow_missing: bool = False, fill_missing: bool = True) -> tuple[dict[str, str], dict]:
    """Predictions by item key, joined on the key, else on (character, question).

    Items without a prediction are an error unless ``allow_missing``; they then get "" (scored as
    empty answers) when ``fill_missing``, or stay absent (the judge skips them).
    """
    by_key = {it.key: it for it in bench.items}
    by_pair: dict[tuple, list[EvalItem]] = {}
    for it in bench.items:
        by_pair.setdefault(((it.character or ""), it.question.strip()), []).append(it)
    preds: dict[str, str] = {}
    unmatched: list[str] = []
    for where, r in rows:
        hits: list[EvalItem] = []
        if r.get("key") is not None and r["key"] in by_key:
            hits = [by_key[r["key"]]]
        elif isinstance(r.get("question"), str):
            hits = by_pair.get((r.get("character") or "", r["question"].strip()), [])
        if not hits:
            unmatched.append(where)
        for it in hits:
            preds.setdefault(it.key, r["prediction"])  # first answer wins on duplicates
    missing = [it for it in bench.items if it.key not in preds]
    if not preds:
        shown = ", ".join(f"({it.character}, {it.question[:20]!r})" for it in bench.items[:3])
        raise DataError(f"{source}: none of its {len(rows)} predictions joins the {len(bench.items)} items of "
                        f"benchmark={bench.name} (joined on key, else on (character, question)); first rows at "
                        f"{', '.join(unmatched[:3])}; benchmark items look like {shown}")
    if missing and not allow_missing:
        shown = "; ".join(f"({it.character}, {it.question[:30]!r})" for it in missing[:3])
        raise DataError(f"{source}: {len(missing)} of {len(bench.items)} benchmark items have no prediction, e.g. "
                        f"{shown}; check that the file answers benchmark={bench.name}, or set "
                        "answers.allow_missing=true to score them as empty answers")
    if fill_missing:
        for it in missing:
            preds[it.key] = ""
    return preds, {"answers/missing": len(missing), "answers/unmatched": len(unmatched)}


def prediction_file(path_arg: str, what: str) -> Path:
    """A predictions file, or the one inside an evaluate.py / train.py run directory."""
    path = Path(path_arg).expanduser()
    if path.is_dir():
        for name in ("samples.jsonl", "predictions.jsonl"):
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"{what}={path_arg!r}: directory has no samples.jsonl or predictions.jsonl")
    if not path.is_file():
        raise ConfigError(f"{what}={path_arg!r}: no such file")
    return path


def load_compared(entry: str, bench: Benchmark, what: str) -> tuple[str, dict[str, str]]:
    """(name, answers) of another model for the judge: whatever of the benchmark it answered.

    ``entry`` is PATH or NAME=PATH; an evaluate.py run directory is named by its answers/name.
    """
    name, sep, path_arg = entry.partition("=")
    if not sep or "/" in name or Path(entry).expanduser().exists():  # multirun dirs have '=' in their names
        name, path_arg = "", entry
    path = prediction_file(path_arg, what)
    if not name:
        metrics = path.parent / "metrics.json"
        if metrics.is_file():
            import json

            name = json.loads(metrics.read_text(encoding="utf-8")).get("answers/name") or ""
        name = name or (path.parent.name if path.name in ("samples.jsonl", "predictions.jsonl") else path.stem)
    preds, _ = join_predictions(read_prediction_file(path), bench, f"{what}={path_arg}", allow_missing=True,
                                fill_missing=False)
    return name, preds


def from_predictions(cfg, bench: Benchmark) -> Answers:
    a = cfg.answers
    if not a.path:
        raise ConfigError("answers=predictions needs answers.path=FILE (a predictions JSONL)")
    path = prediction_file(a.path, "answers.path")
    rows = read_prediction_file(path, a.format)
    preds, stats = join_predictions(rows, bench, f"answers.path={a.path}", a.allow_missing)
    default = Path(a.path).expanduser().name if path.name != Path(a.path).name else path.stem
    return Answers(a.name or default, preds, stats)


# ---- models --------------------------------------------------------------------------------


def _device(cfg) -> str:
    import torch

    if cfg.device:
        return cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_answers(cfg, bench: Benchmark, model, tok, model_cfg, num_exemplars: int, emotions: bool,
                     max_source_length: int) -> tuple[dict[str, str], dict]:
    from rolecraft.data.tokenize import ChatEncoder
    from rolecraft.evaluation.generate import generate
    from rolecraft.modeling.base import stop_token_ids

    model.to(_device(cfg))
    encoder = ChatEncoder(tok, max_source_length, 0, model_cfg.chat_template)
    ids = [encoder.prompt_ids(bench.messages(it, num_exemplars, emotions), it.key) for it in bench.items]
    t0 = time.perf_counter()
    preds = generate(model, tok, ids, cfg.generation, stop_token_ids(tok, model_cfg),
                     batch_size=cfg.answers.batch_size, seed=cfg.seed, progress=True)
    stats = {"answers/generation_seconds": round(time.perf_counter() - t0, 3),
             "answers/truncated_prompts": encoder.truncated.prompts}
    return {it.key: p for it, p in zip(bench.items, preds)}, stats


def _use_retrieval(rcfg, bench: Benchmark, cache_dir) -> None:
    """Retrieval needs the character's script: only for benchmarks that carry the dataset."""
    if rcfg is None or rcfg.backend == "none" or bench.dataset is None:
        return
    from rolecraft.retrieval.index import build_retriever

    bench.retriever = build_retriever(rcfg, bench.dataset, cache_dir)


def from_model(cfg, bench: Benchmark) -> Answers:
    from rolecraft.modeling.base import load_base

    _use_retrieval(cfg.retrieval, bench, cfg.paths.cache_dir)
    model, tok, _ = load_base(cfg.model, cfg.paths.cache_dir)
    preds, stats = generate_answers(cfg, bench, model, tok, cfg.model, cfg.benchmark.num_exemplars,
                                    cfg.benchmark.emotions, cfg.answers.max_source_length)
    return Answers(cfg.answers.name or cfg.model.name, preds, stats)


def load_run(run_dir: str | Path, cache_dir: str):
    """(peft model, tokenizer, run config) of a finished train.py run."""
    from omegaconf import OmegaConf

    run = Path(run_dir).expanduser()
    if not (run / "config.yaml").is_file() or not (run / "adapter" / "adapter_config.json").is_file():
        raise ConfigError(f"answers.path={str(run_dir)!r}: not a finished train.py run (needs config.yaml and "
                          "adapter/adapter_config.json)")
    run_cfg = OmegaConf.load(run / "config.yaml")
    from peft import PeftModel

    from rolecraft.modeling.base import load_base

    base, tok, _ = load_base(run_cfg.model, cache_dir)
    model = PeftModel.from_pretrained(base, str(run / "adapter"))
    model.eval()
    return model, tok, run_cfg


def from_run(cfg, bench: Benchmark) -> Answers:
    a = cfg.answers
    if not a.path:
        raise ConfigError("answers=run needs answers.path=RUN_DIR (a finished train.py run directory)")
    model, tok, run_cfg = load_run(a.path, cfg.paths.cache_dir)
    # the prompt the adapter was trained on: its exemplar count, emotion and retrieval settings
    _use_retrieval(run_cfg.get("retrieval"), bench, cfg.paths.cache_dir)
    preds, stats = generate_answers(cfg, bench, model, tok, run_cfg.model, run_cfg.data.num_exemplars,
                                    run_cfg.emotions.enabled, run_cfg.data.max_source_length)
    return Answers(a.name or Path(a.path).name, preds, stats)


# ---- API endpoints ---------------------------------------------------------------------------


def api_cache_path(cfg) -> Path:
    return Path(str(cfg.paths.cache_dir)).expanduser() / "api_cache.sqlite"


def from_openai(cfg, bench: Benchmark) -> Answers:
    from rolecraft.api.client import Endpoint

    a, g = cfg.answers, cfg.generation
    ep = Endpoint(a.endpoint, "answers.endpoint", api_cache_path(cfg), progress=True)
    _use_retrieval(cfg.retrieval, bench, cfg.paths.cache_dir)
    convs = [bench.messages(it, cfg.benchmark.num_exemplars, cfg.benchmark.emotions) for it in bench.items]
    t0 = time.perf_counter()
    results = ep.chat_many(a.model, convs, temperature=g.temperature if g.do_sample else 0.0,
                           top_p=g.top_p if g.do_sample else None, max_tokens=g.max_new_tokens, desc="answers")
    failed = [(it, r) for it, r in zip(bench.items, results) if r.error]
    if failed:
        raise DataError(f"answers.endpoint: {len(failed)} of {len(results)} requests failed (the other answers are "
                        f"cached: a rerun retries only these); first: {failed[0][1].error}")
    s = ep.stats
    stats = {"answers/generation_seconds": round(time.perf_counter() - t0, 3), "answers/api_requests": s.requests,
             "answers/api_cached": s.cached, "answers/api_retries": s.retries,
             "answers/api_prompt_tokens": s.prompt_tokens, "answers/api_completion_tokens": s.completion_tokens}
    return Answers(a.name or a.model, {it.key: (r.content or "").strip() for it, r in zip(bench.items, results)}, stats)
