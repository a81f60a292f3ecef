"""`python construct.py stage=annotate|profile|qa|general|all` / `rolecraft-construct`.

Reads a RoleInstruct dataset, runs the stages in order (each sees the previous one's output),
and writes the enriched dataset atomically at the end, plus ``construct_report.json`` (counts,
failures, tokens, cost) in the run directory. Only hydra/omegaconf load before the config has
composed; ``construct.dry_run=true`` prints sample prompts and estimates and calls nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rolecraft import config as _schema
from rolecraft.paths import config_dir

_schema.register("construct_schema")  # only ours: see config.register

def stages_of(stage: str) -> list[str]:
    """The stages to run, in the table's order (:data:`rolecraft.construct.stages.STAGES`)."""
    from rolecraft.construct.stages import STAGES
    from rolecraft.errors import ConfigError

    order = list(STAGES)
    if stage == "all":
        return order
    names = [s.strip() for s in stage.split(",") if s.strip()]
    bad = [s for s in names if s not in STAGES]
    if bad or not names:
        raise ConfigError(f"stage={stage!r}: use one of {', '.join(order)}, all, or a comma list such as annotate,qa")
    return [s for s in order if s in names]


def _characters(ds, wanted) -> list[str]:
    from rolecraft.errors import ConfigError

    names = list(ds.characters)
    if not wanted:
        return names
    unknown = [c for c in wanted if c not in ds.characters]
    if unknown:
        raise ConfigError(f"construct.characters: unknown {', '.join(map(repr, unknown))}; known: {', '.join(names)}")
    return [c for c in names if c in set(wanted)]


def _shorten(text: str, n: int = 900) -> str:
    return text if len(text) <= n else text[:n] + f"…（另 {len(text) - n} 字）"


def dry_run(cfg, ds, ctx, stages: list[str], journal_path: Path) -> dict:
    from rolecraft.construct.costs import cost_usd, estimate_messages, format_usd, price_of
    from rolecraft.api.store import Journal, params_key, prompt_hash
    from rolecraft.construct.stages import STAGES

    journal = Journal(journal_path) if journal_path.is_file() else None
    price = price_of(cfg.llm)
    rows, total = [], [0, 0, 0, 0]
    for stage in stages:
        plan = STAGES[stage].plan(ds, ctx)
        pt = sum(estimate_messages(t.messages) for t in plan.tasks)
        ct = sum(t.expect_tokens for t in plan.tasks)
        hits = 0
        if journal is not None:
            pk = params_key(ctx.params)
            hits = sum(journal.get(cfg.llm.model, prompt_hash(t.messages, t.key_tag), pk) is not None for t in plan.tasks)
        rows.append((stage, len(plan.tasks), hits, pt, ct))
        for i, v in enumerate((len(plan.tasks), hits, pt, ct)):
            total[i] += v
        if plan.tasks:
            print(f"=== {stage}: sample prompt ({plan.tasks[0].item}) ===")
            for m in plan.tasks[0].messages:
                print(f"--- {m['role']} ---\n{_shorten(m['content'])}")
            print()
    print(f"dry run, model {cfg.llm.model}: nothing was sent")
    print(f"{'stage':<10}{'requests':>10}{'in journal':>12}{'prompt tok':>12}{'answer tok':>12}  est. cost")
    for stage, n, hits, pt, ct in rows:
        print(f"{stage:<10}{n:>10}{hits:>12}{pt:>12}{ct:>12}  {format_usd(cost_usd(pt, ct, price))}")
    print(f"{'total':<10}{total[0]:>10}{total[1]:>12}{total[2]:>12}{total[3]:>12}  "
          f"{format_usd(cost_usd(total[2], total[3], price))}")
    if len(stages) > 1:
        print("note: later stages are estimated on the input as it is now (before earlier stages enrich it); "
              "re-asks of invalid answers are not included")
    return {"dry_run": True, "requests": total[0], "in_journal": total[1], "prompt_tokens": total[2],
            "completion_tokens": total[3], "cost_usd": cost_usd(total[2], total[3], price)}


def _check_limits(cfg) -> None:
    from rolecraft.errors import ConfigError

    llm = cfg.llm
    checks = [("construct.max_attempts", cfg.construct.max_attempts, 1), ("llm.concurrency", llm.concurrency, 1),
              ("llm.max_retries", llm.max_retries, 0)]
    for key, value, least in checks:
        if value < least:
            raise ConfigError(f"{key}={value}: must be at least {least}")
    for key in ("requests_per_minute", "tokens_per_minute"):
        value = getattr(llm, key)
        if value is not None and value <= 0:
            raise ConfigError(f"llm.{key}={value}: must be positive (or null for no limit)")
    if llm.burst_seconds <= 0 or llm.timeout <= 0:
        raise ConfigError(f"llm.burst_seconds={llm.burst_seconds}, llm.timeout={llm.timeout}: both must be positive")


def run(cfg: DictConfig) -> dict:
    from rolecraft.construct.costs import format_usd, price_of
    from rolecraft.construct.engine import Engine, request_params
    from rolecraft.api.store import Journal
    from rolecraft.construct.stages import STAGES, Context
    from rolecraft.construct.templates import load_template
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.fileio import write_json

    from rolecraft.config_checks import check_construct

    check_construct(cfg)  # every value range-checked before anything is read or sent
    c = cfg.construct
    stages = stages_of(cfg.stage)
    _check_limits(cfg)
    price = price_of(cfg.llm)  # a bad price table fails here, before anything is paid
    ds = schema.load(resolve_data_root(c.input))
    run_dir = Path(cfg.paths.output_dir)
    out = Path(c.out).expanduser() if c.out else run_dir / "dataset"
    if not c.dry_run:  # a bad construct.out fails here, before anything is paid
        from rolecraft.fileio import check_output_dir

        check_output_dir(out, force=bool(c.force), inputs=[ds.root], what="construct.out")
    journal_path = Path(c.journal).expanduser() if c.journal else Path(cfg.paths.cache_dir).expanduser() / "construct_journal.sqlite"
    params = request_params(cfg.llm)
    ctx = Context(c, cfg.llm.model, params, cfg.seed, _characters(ds, list(c.characters)))
    if c.dry_run:
        return dry_run(cfg, ds, ctx, stages, journal_path)

    journal = Journal(journal_path)
    engine = Engine(cfg.llm, journal, max_attempts=c.max_attempts, progress=c.progress)
    failures, produced, skipped = [], {}, {}
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        for stage in stages:
            plan = STAGES[stage].plan(ds, ctx)
            for note in plan.notes:
                print(f"note: {note}", file=sys.stderr)
            outcomes = engine.run(stage, plan.tasks)
            produced[stage] = plan.apply(outcomes)
            if plan.skipped:
                skipped[stage] = plan.skipped
            bad = [o for o in outcomes if not o.ok]
            failures += [{"stage": stage, "item": o.task.item, "attempts": o.attempts, "error": o.error,
                          "last_answer": o.last_answer} for o in bad]
            ds.meta.setdefault("construction", []).append({
                "stage": stage, "model": cfg.llm.model, "params": params,
                "template_sha256": load_template(STAGES[stage].template).sha256[:16], "records": produced[stage], "failed": len(bad)})
    except BaseException as e:  # refused endpoint, Ctrl-C: keep the accounting of what was paid
        write_json(run_dir / "construct_report.json", _report(cfg, engine, stages, produced, skipped, failures, out,
                                                              journal_path, params, price, aborted=str(e) or type(e).__name__))
        raise
    finally:
        journal.close()
    schema.save(ds, out, force=bool(c.force), writer="construct.py", what="construct.out")
    schema.load(out)  # what we wrote must read back as a valid dataset

    report = _report(cfg, engine, stages, produced, skipped, failures, out, journal_path, params, price)
    stats, paid, reused = report["stages"], report["tokens_paid"], report["tokens_reused_from_journal"]
    report_path = run_dir / "construct_report.json"
    write_json(report_path, report)

    for s, v in stats.items():
        print(f"{s}: {v['tasks']} tasks, {v['done']} ok, {v['failed']} failed, {v['reasks']} re-asked; "
              f"{v['requests']} requests ({v['retries']} retries), {v['answers_from_journal']} answers from the journal; "
              f"{produced[s]} records; {v['seconds']:.1f}s")
    for s, items in skipped.items():
        print(f"{s}: {len(items)} answer(s) not added (already in the dataset), listed in the report")
    print(f"tokens paid: {paid['prompt']} prompt + {paid['completion']} completion = {format_usd(report['cost_usd'])} "
          f"({cfg.llm.model}); reused from the journal: {reused['prompt'] + reused['completion']} tokens = "
          f"{format_usd(report['cost_saved_usd'])}")
    print(f"wrote {out}")
    print(f"report {report_path}")
    return report


def failure_summary(report: dict, report_path: Path | str = "the report") -> str | None:
    """One line when any task failed (None when every task succeeded): construct.py then exits 2."""
    failures = report.get("failures") or []
    if not failures or report.get("dry_run"):
        return None
    tasks = sum(v.get("tasks", 0) for v in report.get("stages", {}).values())
    endpoint = sum(str(f.get("error", "")).startswith("endpoint:") for f in failures)
    return (f"{len(failures)} of {tasks} task(s) failed ({endpoint} endpoint error(s), {len(failures) - endpoint} "
            f"answer(s) still invalid) and changed nothing; they are listed in {report_path}. "
            f"Rerun the same command to retry them (answers already received are replayed from the journal for free); "
            f"for invalid answers raise construct.max_attempts")


def _report(cfg, engine, stages, produced, skipped, failures, out, journal_path, params, price, aborted=None) -> dict:
    from rolecraft.construct.costs import cost_usd

    stats = {s: engine.stats[s].as_dict() for s in stages if s in engine.stats}
    paid = [sum(v["prompt_tokens"] for v in stats.values()), sum(v["completion_tokens"] for v in stats.values())]
    reused = [sum(v["journal_prompt_tokens"] for v in stats.values()),
              sum(v["journal_completion_tokens"] for v in stats.values())]
    report = {
        "stages": stats, "records": produced, "skipped": skipped, "failures": failures, "out": str(out),
        "journal": str(journal_path), "model": cfg.llm.model, "params": params,
        "price_usd_per_1m_tokens": list(price) if price else None,
        "tokens_paid": {"prompt": paid[0], "completion": paid[1]}, "cost_usd": cost_usd(*paid, price),
        "tokens_reused_from_journal": {"prompt": reused[0], "completion": reused[1]},
        "cost_saved_usd": cost_usd(*reused, price),
    }
    if aborted is not None:
        report["aborted"] = " ".join(aborted.split())
    from rolecraft.rundir import redact

    return redact(report)  # no credentials of a URL (an endpoint's error message) in the report


@hydra.main(config_path=config_dir(), config_name="construct", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from rolecraft.config_checks import check_construct, one_line, scrub_hydra_records
    from rolecraft.errors import RolecraftError

    scrub_hydra_records()  # Hydra recorded the command line before this task started
    from rolecraft.console import setup

    setup(quiet=cfg.quiet)  # logs on stderr once, known-harmless noise filtered
    try:
        check_construct(cfg)  # every value range-checked before anything heavy loads
        report = run(cfg)
    except RolecraftError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    summary = failure_summary(report, Path(cfg.paths.output_dir) / "construct_report.json")
    if summary:  # the dataset and the report are written; the exit status says work was lost
        print(f"error: {one_line(summary)}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    from rolecraft.paths import quote_non_ascii_overrides

    from rolecraft.config_checks import refuse_secret_command_line

    refuse_secret_command_line(sys.argv[1:])  # before Hydra writes the command line to .hydra/
    sys.argv[1:] = quote_non_ascii_overrides(sys.argv[1:])
    from rolecraft.hydra_help import maybe_print_help

    if maybe_print_help("construct", sys.argv[1:]):  # only construct's own groups, without Hydra's slow listing
        return
    _hydra_main()


if __name__ == "__main__":
    main()
