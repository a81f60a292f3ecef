"""One evaluation run: benchmark -> answers -> Rouge-L (+ RPCS, + judge) -> run directory.

The run directory (``rolecraft.rundir``) holds config.yaml (resolved, secrets redacted),
prompt.yaml (the prompt spec answers were made with), metrics.json (flat keys, 0-1 scale),
samples.jsonl (one row per item: question, references, prediction, per-sample scores),
characters.json (profiles, where the benchmark has them) and judge.jsonl when a judge ran.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rolecraft.errors import ConfigError

log = logging.getLogger("rolecraft")


def run(cfg) -> dict:
    from rolecraft.config_checks import check_evaluate

    check_evaluate(cfg)  # values range-checked before anything is written or loaded
    t0 = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    from rolecraft.data.prompts import typed_override_keys, write_spec
    from rolecraft.evaluation.answers import get_answers, load_compared
    from rolecraft.evaluation.benchmarks import load_benchmark
    from rolecraft.evaluation.metrics import score_all
    from rolecraft.evaluation.results import result_rows, write_results
    from rolecraft.evaluation.rouge import RougeOptions
    from rolecraft.fileio import write_jsonl
    from rolecraft.inference.sources import api_cache_path
    from rolecraft.rundir import write_config, write_metrics

    _check(cfg)
    spec, prompt_notes = _prompt_spec(cfg, typed_override_keys())
    r = cfg.rouge
    RougeOptions(r.tokenizer, r.stat, r.references, r.postprocess)  # bad options fail before any work
    bench = load_benchmark(cfg.benchmark)
    # the judge's comparison files are read up front: a bad path fails before answers cost anything
    compared: dict[str, dict[str, str]] = {}
    if cfg.judge.mode != "none":
        for i, entry in enumerate(cfg.judge.compare):
            name, preds = load_compared(str(entry), bench, f"judge.compare[{i}]")
            if name in compared:
                raise ConfigError(f"judge.compare[{i}]={entry!r}: a second model named {name!r}; "
                                  "name them apart with 'NAME=PATH'")
            compared[name] = preds
    write_config(cfg, out)
    write_spec(out, spec)
    _write_provenance(cfg, out, bench, spec)

    answers = get_answers(cfg, bench, spec)
    rows = result_rows(bench, answers)
    # items: the whole benchmark; evaluated: what benchmark.max_samples / kinds left of it
    metrics: dict = {"answers/name": answers.name, "benchmark/name": bench.name, "benchmark/items": bench.total,
                     "benchmark/evaluated": len(rows)}
    metrics.update(prompt_notes)
    metrics.update({f"benchmark/skipped/{k}": v for k, v in bench.skipped.items()})
    metrics.update(answers.stats)
    metrics.update(score_all(cfg, rows))
    if bench.name == "charactereval":
        from rolecraft.evaluation import charactereval

        metrics.update(charactereval.score(cfg, bench, answers.predictions, rows))

    if cfg.judge.mode != "none":
        from dataclasses import asdict

        from rolecraft.api.client import Endpoint
        from rolecraft.evaluation.judge import run_judge

        if answers.name in compared:
            raise ConfigError(f"judge.compare has a model named {answers.name!r}, the same as this run's answers; "
                              "rename one (answers.name=... or 'NAME=PATH')")
        candidates = {answers.name: answers.predictions, **compared}
        endpoint = Endpoint(cfg.judge.endpoint, "judge.endpoint", api_cache_path(cfg.paths.cache_dir), progress=True)
        if bench.name == "charactereval":  # its own rubric per dimension
            from rolecraft.evaluation import charactereval

            verdicts, jm = charactereval.run_judge(cfg, bench, answers.predictions, answers.name, endpoint)
            charactereval.add_judge_to_rows(rows, verdicts)
        else:
            verdicts, jm = run_judge(cfg, bench, candidates, endpoint)
        metrics.update(jm)
        metrics["judge/model"] = cfg.judge.model
        write_jsonl(out / "judge.jsonl", (asdict(v) for v in verdicts))
        judge_failed = _judge_failures(cfg, out, jm)

    write_results(out, bench, rows)
    if cfg.judge.mode != "none" and judge_failed is not None:
        raise judge_failed  # after judge.jsonl and samples.jsonl, before metrics.json: not a finished run
    metrics["time/total_seconds"] = round(time.perf_counter() - t0, 3)
    _log(cfg, out, metrics, rows)
    write_metrics(out, metrics)  # last: a run directory with metrics.json is a finished run
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
                      if "/options/" not in k and not k.startswith("judge/position_bias/top_share")},
                     ensure_ascii=False))
    return metrics


def _judge_failures(cfg, out: Path, jm: dict):
    """Failed verdicts said loudly: a warning whenever some failed, and the error to raise (once the
    verdicts and samples are on disk) when more than ``judge.max_failed`` of them did."""
    from rolecraft.errors import RolecraftError

    total, failed = jm.get("judge/verdicts", 0), jm.get("judge/failures", 0)
    if not total or not failed:
        return None
    share = failed / total
    what = (f"judge: {failed} of {total} verdicts failed ({share:.0%}; malformed after judge.max_attempts="
            f"{cfg.judge.max_attempts} tries, or the endpoint failed); each is in {out / 'judge.jsonl'}")
    if share > cfg.judge.max_failed:
        log.error("%s", what)
        return RolecraftError(f"{what}; the run is not recorded as finished (no metrics.json): check judge.model and "
                              f"judge.endpoint and rerun (answers are cached), or set judge.max_failed=1.0 "
                              f"(now {cfg.judge.max_failed}) to record it anyway")
    log.warning("%s; averages use the other %d", what, total - failed)
    return None


def _write_provenance(cfg, out: Path, bench, spec) -> None:
    """provenance.json: where the answers came from (the base model of a preset or a trained run,
    an endpoint's model, or a predictions file, hashed), the benchmark's files with their hashes,
    the prompt spec, the overrides and the code version."""
    from rolecraft import provenance
    from rolecraft.rundir import redact_url

    a = cfg.answers
    model: dict = {"source": str(a.source)}
    if a.source == "model":
        model.update(provenance.model_record(cfg.model))
    elif a.source == "openai":
        model.update({"preset": None, "name_or_path": str(a.model), "endpoint": redact_url(str(a.endpoint.base_url))})
    elif a.path:
        p = Path(str(a.path)).expanduser()
        run_dir = p if p.is_dir() else p.parent
        made = provenance.read(run_dir)
        if made and isinstance(made.get("model"), dict):  # the run that made the answers knows its base
            model.update({k: v for k, v in made["model"].items() if k != "source"})
            model["made_by"] = made.get("program")
        elif a.source == "run":
            from rolecraft.rundir import read_config

            m = read_config(p).get("model") or {}
            model.update({"preset": m.get("name"), "name_or_path": m.get("name_or_path")})
        model["path"] = str(a.path)
        if p.is_file():
            model["sha256"] = provenance.file_sha256(p)
    root = cfg.benchmark.root
    if bench.dataset is not None and getattr(bench.dataset, "root", None) is not None:
        data = provenance.dataset_record(str(root), bench.dataset)
    else:
        data = provenance.data_record(bench.name, root, list(bench.files))
    data["benchmark"] = bench.name
    judge = {"mode": str(cfg.judge.mode), "model": str(cfg.judge.model)} if cfg.judge.mode != "none" else None
    provenance.write(out, provenance.build("evaluate.py", model, data, spec, judge=judge))


def _prompt_spec(cfg, typed: set[str]):
    """The prompt spec answers are made with, and metrics noting where it came from.

    answers=run takes the run's recorded spec (and its other evaluation settings, see
    ``adopt_run_settings``); a key typed on the command line wins and the difference is reported.
    A run whose recorded template hash differs from what this code renders is reported too.
    """
    from rolecraft.data.prompts import PromptSpec, recorded_spec, resolve_spec, template_sha256

    typed_spec = PromptSpec.from_config(cfg.prompt)
    if cfg.answers.source != "run" or not cfg.answers.path:
        return typed_spec, {}
    from rolecraft.evaluation.answers import adopt_run_settings

    for note in adopt_run_settings(cfg, typed):
        log.info("answers=run: %s", note)
    recorded, sha = recorded_spec(cfg.answers.path)
    spec, diffs = resolve_spec(recorded, typed_spec, typed)
    notes: dict = {"prompt/from_run": True}
    if diffs:
        log.warning("answers=run: the prompt differs from the one the run trained with (%s): set on the command "
                    "line", "; ".join(diffs))
        notes["prompt/overridden"] = "; ".join(diffs)
    now = template_sha256(spec)
    if sha is not None and sha != now and not diffs:
        log.warning("answers=run: the prompt code renders a different text than when the run trained "
                    "(template %s, recorded hash %s…, now %s…): scores may not compare", spec.template, sha[:12],
                    now[:12])
        notes["prompt/template_changed"] = True
    return spec, notes


def _check(cfg) -> None:
    """Key values that can be checked before any data, model or endpoint is touched."""
    from rolecraft.evaluation.answers import SOURCES
    from rolecraft.evaluation.benchmarks import BENCHMARKS
    from rolecraft.evaluation.judge import MODES
    from rolecraft.evaluation.rpcs import BACKENDS

    for key, val, allowed in (("benchmark.name", cfg.benchmark.name, BENCHMARKS),
                              ("answers.source", cfg.answers.source, SOURCES),
                              ("rpcs.backend", cfg.rpcs.backend, BACKENDS), ("judge.mode", cfg.judge.mode, MODES),
                              ("logger.name", cfg.logger.name, ("csv", "wandb", "none"))):
        if val not in allowed:
            raise ConfigError(f"{key}={val!r}: use one of {', '.join(allowed)}")
    if cfg.benchmark.name == "charactereval":
        if cfg.judge.mode == "rank":
            raise ConfigError("judge=rank is not defined for benchmark=charactereval: use judge=pointwise (each "
                              "reply scored 1-5 on the item's dimensions)")
        if cfg.judge.mode != "none" and cfg.judge.compare:
            raise ConfigError("judge.compare is not supported with benchmark=charactereval yet: judge each "
                              "model's answers in its own run")
        if cfg.rpcs.backend != "none":
            raise ConfigError("rpcs compares answers with reference answers, which benchmark=charactereval has "
                              "none of: use rpcs=none")
        rm = cfg.benchmark.reward_model
        if rm and not (Path(str(rm)).expanduser() / "config.json").is_file():  # before any answer is paid for
            raise ConfigError(f"benchmark.reward_model={rm!r}: not a model directory (no config.json); give a saved "
                              "AutoModelForSequenceClassification with one output, e.g. CharacterRM")
    elif cfg.benchmark.reward_model:
        raise ConfigError(f"benchmark.reward_model is for benchmark=charactereval (scores its dimensions), not "
                          f"benchmark={cfg.benchmark.name}: remove it")
    if cfg.judge.mode == "rank" and not cfg.judge.compare:
        raise ConfigError("judge=rank ranks several models' answers: add judge.compare=[EVAL_RUN_DIR_OR_FILE,...]")


def _log(cfg, out: Path, metrics: dict, rows: list[dict]) -> None:
    if cfg.logger.name != "wandb":
        return
    import wandb

    from rolecraft.tracking import define_metrics, group_of, log_results, run_config

    w = cfg.logger.wandb
    run = wandb.init(project=w.project, entity=w.entity, group=group_of(cfg), job_type="eval",
                     tags=list(w.tags) + list(cfg.tags), mode=w.mode, dir=str(out), config=run_config(cfg))
    define_metrics(run)
    numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    run.log(numeric)
    log_results(run, metrics, rows)
    run.finish()
