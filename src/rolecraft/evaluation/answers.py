"""Where answers come from: a training run, a local/hub model, an API endpoint, or a file.

Every source returns ``Answers``: a prediction per benchmark item key, a display name, and counts
that belong in metrics (missing, unmatched, API usage, generation time). Models and endpoints
answer through the inference layer (``rolecraft.inference``); files and run directories are read
through ``rolecraft.rundir``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rolecraft.errors import ConfigError, DataError
from rolecraft.evaluation.benchmarks import Benchmark, EvalItem

FORMATS = ("auto", "rolecraft", "rolebench")
log = logging.getLogger("rolecraft")


@dataclass
class Answers:
    name: str
    predictions: dict[str, str]
    stats: dict = field(default_factory=dict)
    # the rendered prompt per item key, where the source renders one (local models)
    prompts: dict[str, str] = field(default_factory=dict)


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
                     allow_missing: bool = False, fill_missing: bool = True,
                     min_matched: float = 0.0) -> tuple[dict[str, str], dict]:
    """Predictions by item key, joined on the key, else on (character, question).

    Items without a prediction are an error unless ``allow_missing``; they then get "" (scored as
    empty answers) when ``fill_missing``, or stay absent (the judge skips them). Predictions that
    join no item of the whole benchmark are counted and reported; none joining, or fewer than
    ``min_matched`` of them (a share), is an error. A prediction for an item that
    ``benchmark.max_samples`` / ``benchmark.kinds`` left out joins the benchmark, just not this run:
    it is counted apart (``answers/outside_limit``), neither matched nor unmatched.
    """
    def index(items: list[EvalItem]):
        by_pair: dict[tuple, list[EvalItem]] = {}
        for it in items:
            by_pair.setdefault(((it.character or ""), it.question.strip()), []).append(it)
        return {it.key: it for it in items}, by_pair

    def hits_in(r: dict, by_key: dict, by_pair: dict) -> list[EvalItem]:
        key = r.get("key")
        if key is not None and str(key) in by_key:  # ids may be numbers in the file (CharacterEval's are)
            return [by_key[str(key)]]
        if isinstance(r.get("question"), str):
            return by_pair.get((r.get("character") or "", r["question"].strip()), [])
        return []

    here = index(bench.items)
    whole = index(bench.all_items) if bench.all_items is not None and len(bench.all_items) > len(bench.items) \
        else None
    preds: dict[str, str] = {}
    unmatched: list[str] = []
    outside = 0
    for where, r in rows:
        hits = hits_in(r, *here)
        if not hits:
            if whole is not None and hits_in(r, *whole):
                outside += 1
            else:
                unmatched.append(where)
        for it in hits:
            preds.setdefault(it.key, r["prediction"])  # first answer wins on duplicates
    missing = [it for it in bench.items if it.key not in preds]
    if not preds:
        shown = ", ".join(f"({it.character}, {it.question[:20]!r})" for it in bench.items[:3])
        raise DataError(f"{source}: none of its {len(rows)} predictions joins the {len(bench.items)} items of "
                        f"benchmark={bench.name} (joined on key, else on (character, question)); first rows at "
                        f"{', '.join(unmatched[:3])}; benchmark items look like {shown}")
    matched = len(rows) - len(unmatched) - outside
    if unmatched:
        log.warning("%s: %d of %d predictions joined benchmark=%s items; %d joined none (first at %s)",
                    source, matched + outside, len(rows), bench.name, len(unmatched), ", ".join(unmatched[:3]))
    # the share is of the predictions that join the whole benchmark or nothing: a file of answers to the
    # whole benchmark passes a limited run as it passes a full one
    if matched + outside < min_matched * len(rows):
        raise DataError(f"{source}: only {matched + outside} of {len(rows)} predictions "
                        f"({(matched + outside) / len(rows):.1%}) join the {bench.total} items of "
                        f"benchmark={bench.name}, {len(unmatched)} join none (first at {', '.join(unmatched[:3])}); "
                        f"check that the file answers this benchmark and split, or lower answers.min_matched "
                        f"(now {min_matched})")
    if missing and not allow_missing:
        shown = "; ".join(f"({it.character}, {it.question[:30]!r})" for it in missing[:3])
        raise DataError(f"{source}: {len(missing)} of {len(bench.items)} benchmark items have no prediction, e.g. "
                        f"{shown}; check that the file answers benchmark={bench.name}, or set "
                        "answers.allow_missing=true to score them as empty answers")
    if fill_missing:
        for it in missing:
            preds[it.key] = ""
    if missing and allow_missing:
        log.warning("%s: %d of %d benchmark items have no prediction (scored as empty answers: "
                    "answers.allow_missing=true)", source, len(missing), len(bench.items))
    return preds, {"answers/matched": matched, "answers/missing": len(missing), "answers/unmatched": len(unmatched),
                   "answers/outside_limit": outside}


def prediction_file(path_arg: str, what: str) -> Path:
    """A predictions file, or the one inside an evaluate.py / train.py run directory."""
    from rolecraft.rundir import LEGACY_SAMPLES, SAMPLES, samples_path

    path = Path(path_arg).expanduser()
    if path.is_dir():
        found = samples_path(path)
        if found is None:
            raise ConfigError(f"{what}={path_arg!r}: directory has no {SAMPLES} (or {LEGACY_SAMPLES})")
        return found
    if not path.is_file():
        raise ConfigError(f"{what}={path_arg!r}: no such file")
    return path


def load_compared(entry: str, bench: Benchmark, what: str) -> tuple[str, dict[str, str]]:
    """(name, answers) of another model for the judge: whatever of the benchmark it answered.

    ``entry`` is PATH or NAME=PATH; an evaluate.py run directory is named by its answers/name.
    """
    from rolecraft.rundir import LEGACY_SAMPLES, SAMPLES, read_metrics

    name, sep, path_arg = entry.partition("=")
    if not sep or "/" in name or Path(entry).expanduser().exists():  # multirun dirs have '=' in their names
        name, path_arg = "", entry
    path = prediction_file(path_arg, what)
    if not name:
        name = (read_metrics(path.parent) or {}).get("answers/name") or ""
        name = name or (path.parent.name if path.name in (SAMPLES, LEGACY_SAMPLES) else path.stem)
    preds, _ = join_predictions(read_prediction_file(path), bench, f"{what}={path_arg}", allow_missing=True,
                                fill_missing=False)
    return name, preds


def from_predictions(cfg, bench: Benchmark, spec=None) -> Answers:
    a = cfg.answers
    if not a.path:
        raise ConfigError("answers=predictions needs answers.path=FILE (a predictions JSONL)")
    path = prediction_file(a.path, "answers.path")
    rows = read_prediction_file(path, a.format)
    preds, stats = join_predictions(rows, bench, f"answers.path={a.path}", a.allow_missing,
                                    min_matched=float(a.min_matched))
    default = Path(a.path).expanduser().name if path.name != Path(a.path).name else path.stem
    return Answers(a.name or default, preds, stats)


# ---- models and endpoints (through the inference layer) ----------------------------------------


def answers_from_engine(name: str, engine, bench: Benchmark, prompts, gen_cfg, batch_size: int, seed: int,
                        template_name: str = "v1", progress: bool = True) -> Answers:
    """Every item answered by ``engine`` from its chat (the training prompt where the benchmark has
    the dataset). Stats are unprefixed: the caller names them (``answers/…`` or ``test/…``)."""
    from rolecraft.evaluation.benchmarks import chats

    got = engine.answer(chats(bench, prompts, template_name), gen_cfg, batch_size=batch_size, seed=seed,
                        keys=[it.key for it in bench.items], progress=progress)
    keys = [it.key for it in bench.items]
    prompts_by_key = {k: p for k, p in zip(keys, got.prompts) if p is not None}
    return Answers(name, dict(zip(keys, got.texts)), dict(got.stats), prompts_by_key)


def prompt_builder(cfg, bench: Benchmark, spec):
    """The training prompt over the benchmark's dataset (None for benchmarks without one)."""
    if bench.dataset is None:
        return None
    from rolecraft.retrieval.index import prompt_builder as build

    return build(bench.dataset, spec, cfg.paths.cache_dir)


def _prefixed(stats: dict) -> dict:
    return {f"answers/{k}": v for k, v in stats.items()}


def from_model(cfg, bench: Benchmark, spec) -> Answers:
    from rolecraft.inference.sources import model_engine

    engine = model_engine(cfg.model, cfg.paths.cache_dir, cfg.device, cfg.answers.max_source_length)
    a = answers_from_engine(cfg.answers.name or cfg.model.name, engine, bench, prompt_builder(cfg, bench, spec),
                            cfg.generation, cfg.answers.batch_size, cfg.seed, spec.template)
    a.stats = _prefixed(a.stats)
    return a


def from_run(cfg, bench: Benchmark, spec) -> Answers:
    from rolecraft.inference.sources import load_run, run_engine

    a = cfg.answers
    if not a.path:
        raise ConfigError("answers=run needs answers.path=RUN_DIR (a finished train.py run directory)")
    trained = load_run(a.path, cfg.paths.cache_dir)
    engine = run_engine(trained, cfg.device, cfg.answers.max_source_length)
    out = answers_from_engine(a.name or Path(a.path).name, engine, bench, prompt_builder(cfg, bench, spec),
                              cfg.generation, cfg.answers.batch_size, cfg.seed, spec.template)
    out.stats = _prefixed(out.stats)
    return out


def from_openai(cfg, bench: Benchmark, spec) -> Answers:
    from rolecraft.inference.sources import endpoint_engine

    a = cfg.answers
    engine = endpoint_engine(a.endpoint, "answers.endpoint", a.model, cfg.paths.cache_dir)
    out = answers_from_engine(a.name or a.model, engine, bench, prompt_builder(cfg, bench, spec), cfg.generation,
                              a.batch_size, cfg.seed, spec.template)
    out.stats = _prefixed(out.stats)
    return out


# the one table of answer sources: a new one is a function here plus conf/answers/NAME.yaml
SOURCES = {"run": from_run, "model": from_model, "openai": from_openai, "predictions": from_predictions}


def get_answers(cfg, bench: Benchmark, spec) -> Answers:
    a = cfg.answers
    if a.source not in SOURCES:
        raise ConfigError(f"answers.source={a.source!r}: use one of {', '.join(SOURCES)}")
    return SOURCES[a.source](cfg, bench, spec)


# ---- a training run's own settings --------------------------------------------------------------


def adopt_run_settings(cfg, typed: set[str]) -> list[str]:
    """answers=run: evaluate the way the run evaluated itself, unless told otherwise on the command
    line — its data's test split, generation, Rouge options, prompt limits and batch size. Returns
    notes on what was taken from the run."""
    from omegaconf import open_dict

    from rolecraft.inference.sources import check_trained_run
    from rolecraft.rundir import read_config

    run = check_trained_run(cfg.answers.path)
    rc = read_config(run)
    data, ev = rc.get("data") or {}, rc.get("eval") or {}

    def untyped(*keys: str) -> bool:
        return not any(t == k or t.startswith(k + ".") for t in typed for k in keys)

    notes = []
    with open_dict(cfg):
        # the run's data unless another benchmark was chosen; each key typed on the command line wins
        if (untyped("benchmark.name") and "benchmark" not in typed) and data.get("root"):
            run_bench = {"name": "roleinstruct", "root": str(data["root"]), "split": str(ev.get("split", "test")),
                         "max_samples": data.get("max_eval_samples")}
            for k, v in run_bench.items():
                if untyped(f"benchmark.{k}"):
                    cfg.benchmark[k] = v
            notes.append(f"benchmark: {cfg.benchmark.root}, {cfg.benchmark.split} split (the run's data)")
        for key, src in (("rouge", ev.get("rouge")), ("generation", ev.get("generation"))):
            if untyped(key) and isinstance(src, dict):
                node = cfg[key]
                for k, v in src.items():
                    if k in node:
                        node[k] = v
        if untyped("answers.batch_size") and "batch_size" in ev:
            cfg.answers.batch_size = int(ev["batch_size"])
        if untyped("answers.max_source_length") and "max_source_length" in data:
            cfg.answers.max_source_length = int(data["max_source_length"])
    return notes
