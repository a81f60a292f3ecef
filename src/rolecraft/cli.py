"""The ``rolecraft`` command.

    rolecraft data import roleinstruct-v1 SRC --out DIR [--report FILE]
    rolecraft data import cped CSV --out DIR [--report FILE] [--mapping MAP.json] [--min-utterances N]
    rolecraft data agreement A B [C ...] [--json OUT] [--labels]
    rolecraft data validate DIR
    rolecraft data stats DIR [--json]
    rolecraft human export --answers NAME=PATH --answers NAME=PATH [...] --out DIR [--n 50]
                           [--annotators 3] [--seed 0] [--kinds general,specific] [--profiles P] [--force]
    rolecraft human import SHEET.csv [...] --key DIR/key.json [--out results.json]
    rolecraft sweep generate [NAME ...] [--check] | expand FILE [--check] | run-local FILE [--runs-dir DIR] [--set K=V]
    rolecraft report EXPERIMENT --runs DIR [--wandb ENTITY/PROJECT] --out OUT
    rolecraft retrieval eval DIR [--backend lexical,bge,openai] [--queries reply|qa] [--k 1,3,5,10]
    rolecraft export RUN_DIR --merge OUT | --adapter OUT [--base BASE]
    rolecraft chat run=RUN_DIR character=NAME [...]      (the same as python chat.py ...)

DIR may be ``embedded:demo`` (the demo dataset shipped in the package). Errors print one line
``error: ...`` on stderr and exit 2 (``data validate``: exit 1 when the dataset is invalid).
This module imports no deep-learning library, so these commands start fast; new command
groups add a subparser in :func:`build_parser` and a handler.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from rolecraft.errors import DataError, RolecraftError


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split("\n"))


def _dataset_root(arg: str) -> Path:
    from rolecraft.data import resolve_data_root

    return resolve_data_root(arg)


# ---- data import ---------------------------------------------------------------------


def _cmd_data_import(args: argparse.Namespace) -> int:
    from rolecraft.data import schema
    from rolecraft.data.importers import IMPORTERS
    from rolecraft.data.importers.roleinstruct_v1 import RoleInstructImportError
    from rolecraft.data.stats import dataset_stats

    importer = IMPORTERS[args.format]
    options = {}
    if args.format == "cped":
        if args.mapping:
            options["mapping"] = Path(args.mapping).expanduser()
        if args.min_utterances is not None:
            options["min_utterances"] = args.min_utterances
    elif args.mapping or args.min_utterances is not None:
        raise RolecraftError(f"--mapping and --min-utterances apply to 'cped' only, not {args.format!r}")
    t0 = time.perf_counter()
    try:
        ds, defects = importer(Path(args.src).expanduser(), **options)
    except RoleInstructImportError as e:
        for d in e.defects:
            print(d, file=sys.stderr)
        raise
    out = schema.save(ds, Path(args.out).expanduser())
    seconds = time.perf_counter() - t0
    for d in defects:
        print(d, file=sys.stderr)
    stats = dataset_stats(ds)
    counts = Counter(d.kind for d in defects)
    if args.format == "cped":
        labels = ", ".join(f"{k} {n}" for k, n in sorted(stats["emotions"].items(), key=lambda kv: (-kv[1], kv[0])) if n)
        summary = (
            f"imported {args.format} from {args.src} -> {out}: {stats['utterances']} utterances, "
            f"{stats['dialogues']} dialogues, {stats['characters']} characters; emotions: {labels} "
            f"({seconds:.1f}s)"
        )
    else:
        summary = (
            f"imported {args.format} from {args.src} -> {out}: {stats['characters']} characters, "
            f"{stats['utterances']} utterances, {stats['specific_instructions']} specific + "
            f"{stats['general_instructions']} general samples, {stats['responses']} references "
            f"({seconds:.1f}s)"
        )
    defect_line = f"{len(defects)} defects" + (
        ": " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) if defects else ""
    )
    print(summary)
    print(defect_line)
    if args.report:
        from rolecraft.fileio import write_json, write_text

        report = Path(args.report).expanduser()
        if report.suffix.lower() == ".json":
            write_json(report, {
                "format": args.format, "source": str(args.src), "out": str(out),
                "defect_counts": dict(sorted(counts.items())),
                "defects": [d.to_dict() for d in defects],
                "stats": stats,
            })
        else:
            write_text(report, "".join(f"{d}\n" for d in defects) + f"{summary}\n{defect_line}\n")
        print(f"report written to {report}")
    return 0


# ---- data agreement ------------------------------------------------------------------


def _cmd_data_agreement(args: argparse.Namespace) -> int:
    from rolecraft.data.agreement import agreement, format_report, load_source

    report = agreement([load_source(a) for a in [args.a, args.b, *args.more]])
    print(format_report(report, show_labels=args.labels))
    if args.json:
        from rolecraft.fileio import write_json

        out = Path(args.json).expanduser()
        write_json(out, report)
        print(f"\nreport written to {out}")
    return 0


# ---- data validate / stats -----------------------------------------------------------


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from rolecraft.data import schema

    try:
        ds = schema.load(_dataset_root(args.dir))
    except DataError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    kinds = Counter(s.kind for s in ds.samples)
    labeled = sum(1 for u in ds.script if u.emotion is not None)
    print(
        f"OK: {len(ds.characters)} characters, {len(ds.script)} utterances ({labeled} with emotion), "
        f"{len(ds.samples)} samples (specific {kinds['specific']}, general {kinds['general']}, raw {kinds['raw']}), "
        f"{sum(len(s.references) for s in ds.samples)} references"
    )
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from rolecraft.data import schema
    from rolecraft.data.stats import dataset_stats, format_stats

    stats = dataset_stats(schema.load(_dataset_root(args.dir)))
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        print(format_stats(stats))
    return 0


# ---- human export / import -----------------------------------------------------------


def _cmd_human_export(args: argparse.Namespace) -> int:
    from rolecraft.evaluation import human

    kinds = list(human.KINDS) if args.kinds.strip() == "all" else [k.strip() for k in args.kinds.split(",") if k.strip()]
    s = human.export(args.answers or [], Path(args.out), n=args.n, annotators=args.annotators, seed=args.seed,
                     kinds=kinds, profiles=args.profiles, force=args.force)
    for note in s.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {s.annotators} sheet(s) x {s.items} questions x {len(s.models)} answers to {s.out} "
          f"({s.joined} questions answered by every model)")
    print(f"send each annotator one sheet_NN.csv and README.txt; keep {s.out / 'key.json'} to yourself")
    return 0


def _cmd_human_import(args: argparse.Namespace) -> int:
    from rolecraft.evaluation import human
    from rolecraft.fileio import write_json

    key = human.load_key(Path(args.key))
    ratings, coverage = human.read_sheets([Path(p) for p in args.sheets], key)
    res = human.aggregate(ratings, key, coverage, resamples=args.resamples, seed=args.seed)
    out = Path(args.out).expanduser() if args.out else human.results_path(Path(args.key))
    write_json(out, res)
    print(human.format_table(res))
    print(f"results written to {out}")
    return 0


# ---- retrieval -----------------------------------------------------------------------


def _cmd_retrieval_eval(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from rolecraft.config import RetrievalConfig
    from rolecraft.data import schema
    from rolecraft.retrieval.index import build_retriever
    from rolecraft.retrieval.quality import evaluate, qa_queries, reply_queries

    ds = schema.load(_dataset_root(args.dir))
    queries = reply_queries(ds) if args.queries == "reply" else qa_queries(ds)
    if args.max_queries:
        queries = queries[:: max(1, len(queries) // args.max_queries)][: args.max_queries]
    if not queries:
        raise DataError(f"{args.dir}: no labelled {args.queries!r} queries (qa needs samples made by "
                        f"`construct.py stage=qa`, which record their excerpt)")
    ks = sorted({int(k) for k in args.k.split(",")})
    results = {}
    for backend in args.backend.split(","):
        default_model = {"openai": "text-embedding-3-small"}.get(backend, RetrievalConfig.model)
        rcfg = OmegaConf.structured(RetrievalConfig(backend=backend, k=max(ks), budget=10**9,
                                                    model=args.model or default_model))
        if args.api_key_env is not None:
            rcfg.endpoint.api_key_env = args.api_key_env
        if args.base_url:
            rcfg.endpoint.base_url = args.base_url
        t0 = time.perf_counter()
        res = evaluate(build_retriever(rcfg, ds, args.cache_dir), queries, ks)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        results[backend] = res
        print(f"{backend}: {res['queries']} {args.queries} queries; "
              + ", ".join(f"recall@{k} {res[f'recall@{k}']:.3f} (random {res[f'random_recall@{k}']:.3f})" for k in ks)
              + f"; MRR@10 {res['mrr@10']:.3f}; {res['seconds']}s")
    if args.json:
        from rolecraft.fileio import write_json

        write_json(Path(args.json), {"data": args.dir, "queries": args.queries, "results": results})
    return 0


# ---- export and chat -----------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from rolecraft.export import export

    if bool(args.merge) == bool(args.adapter):
        raise RolecraftError("export: give exactly one of --merge OUT (full model) or --adapter OUT (adapter only)")
    info = export(args.run, args.merge or args.adapter, merge=bool(args.merge), cache_dir=args.cache_dir, base=args.base)
    out = args.merge or args.adapter
    print(f"wrote the {info['kind']} model of {info['run']} to {out}")
    if args.merge:
        print(f"serve it: vllm serve {out} --served-model-name NAME   (then any OpenAI client at http://HOST:8000/v1)")
    else:
        print(f"serve it: vllm serve {info['base_model_name_or_path']} --enable-lora --lora-modules NAME={out}")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from rolecraft.chat import main as chat_main

    sys.argv = ["rolecraft chat", *args.overrides]
    chat_main()
    return 0


# ---- sweeps and reports --------------------------------------------------------------


def _repo_file(name: str) -> Path:
    here = Path(__file__).resolve().parents[2]
    return here / name


def _cmd_sweep_generate(args: argparse.Namespace) -> int:
    from rolecraft.fileio import write_text
    from rolecraft.sweeps.experiments import known_experiments, load_experiment
    from rolecraft.sweeps.sweepfile import render

    out = Path(args.out) if args.out else _repo_file("sweeps")
    names = args.experiments or known_experiments()
    stale = []
    for name in names:
        exp = load_experiment(name)
        if exp.program is None:
            continue
        target = out / f"{exp.name}.yaml"
        text = render(exp)
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target))
            continue
        write_text(target, text)
        print(f"wrote {target}")
    if stale:
        print(f"error: out of date with experiments/: {', '.join(stale)}; run `rolecraft sweep generate`",
              file=sys.stderr)
        return 1
    return 0


def _cmd_sweep_expand(args: argparse.Namespace) -> int:
    from rolecraft.sweeps.sweepfile import check_composes, expand, load_sweep

    sweep = load_sweep(args.file)
    if args.check:
        check_composes(sweep, args.file)
    for point in expand(sweep):
        print(" ".join(point))
    return 0


def _cmd_sweep_run_local(args: argparse.Namespace) -> int:
    from rolecraft.sweeps.local import run_local

    res = run_local(args.file, args.runs_dir, extra=args.set or [], dry_run=args.dry_run)
    print(f"{len(res.done)} run(s) finished, {len(res.skipped)} already done, {len(res.failed)} failed")
    return 1 if res.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rolecraft.report.main import report
    from rolecraft.report.tables import markdown

    res = report(args.experiment, args.runs, args.out, wandb_path=args.wandb, resamples=args.resamples)
    for p in res.problems:
        print(f"note: {p}", file=sys.stderr)
    print(markdown(res.table))
    for a in res.ablations:
        if a.get("diff") is not None:
            print(f"{a['label']} on {a['metric']}: {a['diff']:+.4f} [{a['ci_low']:+.4f}, {a['ci_high']:+.4f}] "
                  f"(95% CI, paired bootstrap over {a['items']} items; P(diff <= 0) = {a['p_diff_le_0']:.3f})")
    print(f"wrote {res.out} ({', '.join(p.name for p in res.files)}); open {res.out / 'index.html'}")
    return 0


# ---- parser --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line + usage hint, exit 2 (argparse's convention)
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {_one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rolecraft", description="Build, train and evaluate role-playing LLMs (RoleCraft).")
    parser.add_argument("--version", action="version", version=_version())
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    groups.required = True

    data = groups.add_parser("data", help="import, validate and describe RoleInstruct datasets")
    data_cmds = data.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    data_cmds.required = True

    imp = data_cmds.add_parser("import", help="convert a published dataset layout into the canonical format")
    imp.add_argument("format", choices=["roleinstruct-v1", "cped"], help="source layout")
    imp.add_argument("src", help="the source: for roleinstruct-v1 the dataset/role folder with one folder per "
                                 "character; for cped one split CSV (e.g. valid_split.csv)")
    imp.add_argument("--out", required=True, help="the canonical dataset directory to write (atomically)")
    imp.add_argument("--report", help="also write the defects to FILE (JSON with stats if it ends in .json, else text)")
    imp.add_argument("--mapping", metavar="MAP.json",
                     help="cped: JSON object overriding the emotion mapping, {cped_class: label or null}")
    imp.add_argument("--min-utterances", type=int, metavar="N",
                     help="cped: utterances a named speaker needs to become a character (default 20)")
    imp.set_defaults(func=_cmd_data_import)

    ag = data_cmds.add_parser("agreement", help="agreement of emotion annotations (accuracy, kappa, confusion, P/R/F1)")
    ag.add_argument("a", metavar="A", help="the reference annotations (e.g. human gold): a dataset directory, "
                                           "embedded:demo, a script .jsonl or a .csv with columns id,emotion")
    ag.add_argument("b", metavar="B", help="annotations to compare with A (same kinds of source)")
    ag.add_argument("more", nargs="*", metavar="C", help="more sources: Fleiss' kappa over all, pairwise kappas")
    ag.add_argument("--json", metavar="OUT", help="also write every number to OUT (JSON, atomically)")
    ag.add_argument("--labels", action="store_true",
                    help="also print each source's label counts (and, for 3+ sources, per-label P/R/F1 "
                         "of each against A)")
    ag.set_defaults(func=_cmd_data_agreement)

    val = data_cmds.add_parser("validate", help="check a dataset directory (first defect: file:line)")
    val.add_argument("dir", help="dataset directory or 'embedded:demo'")
    val.set_defaults(func=_cmd_data_validate)

    st = data_cmds.add_parser("stats", help="Table-1 statistics and the emotion distribution")
    st.add_argument("dir", help="dataset directory or 'embedded:demo'")
    st.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    st.set_defaults(func=_cmd_data_stats)

    human = groups.add_parser("human", help="blinded human evaluation: export annotation sheets, import ratings")
    human_cmds = human.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    human_cmds.required = True

    hx = human_cmds.add_parser("export", help="write blinded annotation sheets (CE, Consistency, ED; 1-5)")
    hx.add_argument("--answers", action="append", metavar="NAME=PATH",
                    help="a model's answers: an evaluation run directory (samples.jsonl) or a predictions .jsonl; "
                         "repeat for each model (at least 2)")
    hx.add_argument("--out", required=True, help="directory for sheet_NN.csv, key.json and README.txt")
    hx.add_argument("--n", type=int, default=50, help="questions to sample, stratified across characters (default 50)")
    hx.add_argument("--annotators", type=int, default=3, help="number of sheets, one per annotator (default 3)")
    hx.add_argument("--seed", type=int, default=0, help="seed of the sampling, answer order and ids (default 0)")
    hx.add_argument("--kinds", default="general,specific",
                    help="comma-separated kinds of question to use: raw, general, specific or all "
                         "(default general,specific)")
    hx.add_argument("--profiles", help="character profiles: a JSON {name: profile} file, a dataset directory or "
                                       "embedded:demo (default: characters.json beside the answers)")
    hx.add_argument("--force", action="store_true", help="replace a non-empty --out directory")
    hx.set_defaults(func=_cmd_human_export)

    hi = human_cmds.add_parser("import", help="read filled sheets; means, 95%% intervals, Krippendorff's alpha")
    hi.add_argument("sheets", nargs="+", metavar="SHEET.csv", help="filled sheets (annotator id = file name)")
    hi.add_argument("--key", required=True, help="the key.json written by `rolecraft human export`")
    hi.add_argument("--out", help="results JSON to write (default: results.json beside the key)")
    hi.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    hi.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    hi.set_defaults(func=_cmd_human_import)

    sweep = groups.add_parser("sweep", help="W&B sweep files from experiments/, their grids, and running them here")
    sweep_cmds = sweep.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    sweep_cmds.required = True
    sg = sweep_cmds.add_parser("generate", help="write sweeps/*.yaml from experiments/*.yaml")
    sg.add_argument("experiments", nargs="*", help="experiment names or .yaml paths (default: all in experiments/)")
    sg.add_argument("--out", help="directory for the sweep files (default: sweeps/ of the checkout)")
    sg.add_argument("--check", action="store_true", help="write nothing; exit 1 if a sweep file is out of date")
    sg.set_defaults(func=_cmd_sweep_generate)
    se = sweep_cmds.add_parser("expand", help="print every run's overrides in W&B's grid order")
    se.add_argument("file", help="a sweep .yaml")
    se.add_argument("--check", action="store_true", help="also compose every point with Hydra against the schema")
    se.set_defaults(func=_cmd_sweep_expand)
    sr = sweep_cmds.add_parser("run-local", help="run the grid here as plain Hydra runs, skipping finished points")
    sr.add_argument("file", help="a sweep .yaml")
    sr.add_argument("--runs-dir", default="runs", help="where run directories go (default: runs/)")
    sr.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="an extra override for every run, e.g. --set model=tiny (repeatable)")
    sr.add_argument("--dry-run", action="store_true", help="print what would run")
    sr.set_defaults(func=_cmd_sweep_run_local)

    rp = groups.add_parser("report", help="paper-style tables, plots and an HTML dashboard from runs")
    rp.add_argument("experiment", help="an experiment name (experiments/NAME.yaml) or a path to one")
    rp.add_argument("--runs", help="a directory of run directories (searched recursively)")
    rp.add_argument("--wandb", metavar="ENTITY/PROJECT", help="also read runs from W&B (public API)")
    rp.add_argument("--out", required=True, help="output directory (written atomically)")
    rp.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for ablations (default 2000)")
    rp.set_defaults(func=_cmd_report)

    rt = groups.add_parser("retrieval", help="measure retrieval of character context")
    rt_cmds = rt.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    rt_cmds.required = True
    re_ = rt_cmds.add_parser("eval", help="recall@k per backend on labelled queries from the data")
    re_.add_argument("dir", help="dataset directory or 'embedded:demo'")
    re_.add_argument("--backend", default="lexical", help="comma list of lexical, bge, openai (default lexical)")
    re_.add_argument("--queries", choices=["reply", "qa"], default="reply",
                     help="reply: what was said -> the character's reply; qa: constructed question -> its excerpt")
    re_.add_argument("--k", default="1,3,5,10", help="comma list of k (default 1,3,5,10)")
    re_.add_argument("--model", help="bge: sentence-transformers path or id; openai: embedding model name")
    re_.add_argument("--base-url", help="openai: endpoint base URL")
    re_.add_argument("--api-key-env", help="openai: environment variable holding the key ('' for none)")
    re_.add_argument("--max-queries", type=int, help="evaluate an evenly spaced subset")
    re_.add_argument("--cache-dir", default="~/.cache/rolecraft", help="where dense indexes are stored")
    re_.add_argument("--json", help="also write the results to this JSON file")
    re_.set_defaults(func=_cmd_retrieval_eval)

    ex = groups.add_parser("export", help="a trained run as a merged model or a standalone adapter, for serving")
    ex.add_argument("run", help="a train.py run directory")
    ex.add_argument("--merge", metavar="OUT", help="write the base with the adapter merged in (plain transformers)")
    ex.add_argument("--adapter", metavar="OUT", help="write the adapter alone, its base path made loadable")
    ex.add_argument("--base", help="--adapter: base_model_name_or_path to record (default: the run's base)")
    ex.add_argument("--cache-dir", default="~/.cache/rolecraft", help="where the embedded tiny model lives")
    ex.set_defaults(func=_cmd_export)

    ch = groups.add_parser("chat", help="chat with a character (same as python chat.py; Hydra overrides)")
    ch.add_argument("overrides", nargs=argparse.REMAINDER, help="e.g. run=RUN_DIR character=NAME")
    ch.set_defaults(func=_cmd_chat)
    return parser


def _version() -> str:
    from rolecraft import __version__

    return f"rolecraft {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RolecraftError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rolecraft data stats DIR | head`
        return 0
    except OSError as e:  # unwritable --out, a file where a directory should be, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{_one_line(e.strerror or e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
