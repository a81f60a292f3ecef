"""The ``rolecraft`` command.

    rolecraft [-q|-v] COMMAND ...   (-q: warnings and errors only, no progress bars; -v: more detail)
    rolecraft data import roleinstruct-v1 SRC --out DIR [--report FILE] [--force] [--allow-partial]
    rolecraft data import cped CSV --out DIR [--report FILE] [--mapping MAP.json] [--min-utterances N] [--force]
    rolecraft data import messages FILE|DIR|HUB_ID --out DIR [--format openai|sharegpt|alpaca] [--character NAME]
                          [--character-field KEY] [--profile FILE] [--single-kind specific] [--allow-partial]
    rolecraft data export messages DIR --format openai|sharegpt|alpaca --out FILE [--force]
    rolecraft data agreement A B [C ...] [--json OUT] [--labels]
    rolecraft data validate DIR
    rolecraft data stats DIR [--json]
    rolecraft human export --answers NAME=PATH --answers NAME=PATH [...] --out DIR [--n 50]
                           [--annotators 3] [--seed 0] [--kinds general,specific] [--profiles P] [--force]
    rolecraft human import SHEET.csv [...] --key DIR/key.json [--out results.json]
    rolecraft sweep generate [NAME ...] [--check] | expand FILE [--check] | run-local FILE [--runs-dir DIR] [--set K=V]
    rolecraft report EXPERIMENT --runs DIR [--wandb ENTITY/PROJECT] --out OUT [--force] [--allow-empty]
    rolecraft retrieval eval DIR [--backend lexical,bge,openai] [--queries reply|qa] [--k 1,3,5,10]
    rolecraft export RUN_DIR --merge OUT | --adapter OUT [--base BASE] [--force]
    rolecraft chat run=RUN_DIR character=NAME [...]      (the same as python chat.py ...)

DIR may be ``embedded:demo`` (the demo dataset shipped in the package). Results go to stdout;
progress bars, summaries of defects and warnings to stderr (:mod:`rolecraft.console`). Errors print one line
``error: ...`` on stderr and exit 2 (bad input, ``data validate`` included). Every ``--out``
directory is written through :func:`rolecraft.fileio.atomic_dir`: an existing non-empty one is
refused, and ``--force`` replaces only a directory RoleCraft wrote (never the input, ``.``,
home or the checkout).
This module only parses arguments: each handler calls one function of the module that owns the
command (data/, evaluation/human/, sweeps/, report/, retrieval/quality.py, export.py). It imports
no deep-learning library, so these commands start fast; a new command adds a subparser in
:func:`build_parser` and a one-call handler.
"""

from __future__ import annotations

import argparse
import sys

from rolecraft.errors import RolecraftError


def one_line(msg: object) -> str:
    """The entry points' one-line error form (whitespace folded, URL credentials stripped)."""
    from rolecraft.config_checks import one_line as fold

    return fold(msg)


def _default_cache() -> str:
    """The same cache the Hydra entry points use (paths.cache_dir)."""
    import os

    return os.environ.get("ROLECRAFT_CACHE") or "~/.cache/rolecraft"


# ---- handlers: each calls the one function of the module that owns the command --------------


def _cmd_data_import(args: argparse.Namespace) -> int:
    from rolecraft.data.importers import import_command

    options = {"fmt": args.messages_format, "character": args.character, "character_field": args.character_field,
               "profile": args.profile, "single_kind": args.single_kind, "hub_timeout": args.hub_timeout}
    return import_command(args.format, args.src, args.out, report=args.report, mapping=args.mapping,
                          min_utterances=args.min_utterances, force=args.force, allow_partial=args.allow_partial,
                          messages_options=options)


def _cmd_data_export(args: argparse.Namespace) -> int:
    from rolecraft.data.importers.messages import export_command

    return export_command(args.dir, args.messages_format, args.out, force=args.force)


def _cmd_data_agreement(args: argparse.Namespace) -> int:
    from rolecraft.data.agreement import agreement_command

    return agreement_command([args.a, args.b, *args.more], json_out=args.json, show_labels=args.labels)


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from rolecraft.data.stats import validate_command

    return validate_command(args.dir)


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from rolecraft.data.stats import stats_command

    return stats_command(args.dir, as_json=args.json)


def _cmd_human_export(args: argparse.Namespace) -> int:
    from rolecraft.evaluation.human.sheets import export_command

    return export_command(args.answers or [], args.out, n=args.n, annotators=args.annotators, seed=args.seed,
                          kinds=args.kinds, profiles=args.profiles, force=args.force)


def _cmd_human_import(args: argparse.Namespace) -> int:
    from rolecraft.evaluation.human.ratings import import_command

    return import_command(args.sheets, args.key, args.out, resamples=args.resamples, seed=args.seed)


def _cmd_retrieval_eval(args: argparse.Namespace) -> int:
    from rolecraft.retrieval.quality import eval_command

    return eval_command(args.dir, backends=args.backend, queries=args.queries, k=args.k, model=args.model,
                        base_url=args.base_url, api_key_env=args.api_key_env, max_queries=args.max_queries,
                        cache_dir=args.cache_dir, json_out=args.json)


def _cmd_export(args: argparse.Namespace) -> int:
    from rolecraft.export import export_command

    return export_command(args.run, args.merge, args.adapter, cache_dir=args.cache_dir, base=args.base,
                          force=args.force)


def _cmd_chat(args: argparse.Namespace) -> int:
    from rolecraft.chat import main as chat_main

    sys.argv = ["rolecraft chat", *args.overrides]
    chat_main()
    return 0


def _cmd_sweep_generate(args: argparse.Namespace) -> int:
    from rolecraft.sweeps.sweepfile import generate_command

    return generate_command(args.experiments, out=args.out, check=args.check)


def _cmd_sweep_expand(args: argparse.Namespace) -> int:
    from rolecraft.sweeps.sweepfile import expand_command

    return expand_command(args.file, check=args.check)


def _cmd_sweep_run_local(args: argparse.Namespace) -> int:
    from rolecraft.sweeps.local import run_local_command

    return run_local_command(args.file, args.runs_dir, extra=args.set, dry_run=args.dry_run)


def _cmd_report(args: argparse.Namespace) -> int:
    from rolecraft.report.main import report_command

    return report_command(args.experiment, args.runs, args.out, wandb_path=args.wandb, resamples=args.resamples,
                          force=args.force, allow_empty=args.allow_empty)


# ---- parser --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line + usage hint, exit 2 (argparse's convention)
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rolecraft", description="Build, train and evaluate role-playing LLMs (RoleCraft).")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and errors on stderr, no progress bars (stdout is unchanged)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more detail on stderr (data import: every defect, not a summary by kind)")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    groups.required = True

    data = groups.add_parser("data", help="import, validate and describe RoleInstruct datasets")
    data_cmds = data.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    data_cmds.required = True

    imp = data_cmds.add_parser("import", help="convert a published dataset layout into the canonical format")
    imp.add_argument("format", choices=["roleinstruct-v1", "cped", "messages"], help="source layout")
    imp.add_argument("src", help="the source: for roleinstruct-v1 the dataset/role folder with one folder per "
                                 "character; for cped one split CSV (e.g. valid_split.csv); for messages a "
                                 ".json/.jsonl file, a folder of them or a Hub dataset id")
    imp.add_argument("--out", required=True, help="the canonical dataset directory to write (atomically)")
    imp.add_argument("--report", help="also write the defects to FILE (JSON with stats if it ends in .json, else text)")
    imp.add_argument("--mapping", metavar="MAP.json",
                     help="cped: JSON object overriding the emotion mapping, {cped_class: label or null}")
    imp.add_argument("--min-utterances", type=int, metavar="N",
                     help="cped: utterances a named speaker needs to become a character (default 20)")
    imp.add_argument("--format", dest="messages_format", choices=["openai", "sharegpt", "alpaca"],
                     help="messages: the row format (default: recognised per file from its first row)")
    imp.add_argument("--character", help="messages: the character every conversation plays")
    imp.add_argument("--character-field", metavar="KEY",
                     help="messages: the row field naming the character (default 'character'; else the answer's name)")
    imp.add_argument("--profile", metavar="FILE", help="messages: JSON profile {field: text} or {name: {field: text}} "
                                                       "(default: the conversation's system turn)")
    imp.add_argument("--single-kind", choices=["specific", "general", "raw"],
                     help="messages: the kind of a one-question conversation (default specific)")
    imp.add_argument("--hub-timeout", type=float, metavar="S",
                     help="messages: seconds to wait for the Hugging Face Hub (default 60)")
    imp.add_argument("--force", action="store_true", help="replace an existing --out directory that RoleCraft wrote earlier (never other files)")
    imp.add_argument("--allow-partial", action="store_true",
                     help="roleinstruct-v1: exit 0 even when a character folder is skipped or lacks a part; "
                          "messages: even when rows were skipped (a warning instead of an error)")
    imp.set_defaults(func=_cmd_data_import)

    exp = data_cmds.add_parser("export", help="write a dataset's samples in a shared chat format")
    exp.add_argument("format", choices=["messages"], help="output family")
    exp.add_argument("dir", help="dataset directory or 'embedded:demo'")
    exp.add_argument("--format", dest="messages_format", choices=["openai", "sharegpt", "alpaca"], default="openai",
                     help="the row format (default openai)")
    exp.add_argument("--out", required=True, help="the JSON-lines file to write (atomically)")
    exp.add_argument("--force", action="store_true", help="replace an existing --out file")
    exp.set_defaults(func=_cmd_data_export)

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
                    help="a model's answers: any run directory (train.py or evaluate.py) or a samples .jsonl; "
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
    hx.add_argument("--force", action="store_true", help="replace an existing --out directory that RoleCraft wrote earlier (never other files)")
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
    rp.add_argument("--force", action="store_true", help="replace an existing --out directory that RoleCraft wrote earlier (never other files)")
    rp.add_argument("--allow-empty", action="store_true",
                    help="write the report even when no run of the experiment is found (else an error, exit 2)")
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
    re_.add_argument("--cache-dir", default=_default_cache(),
                     help="where dense indexes are stored (default: $ROLECRAFT_CACHE, else ~/.cache/rolecraft)")
    re_.add_argument("--json", help="also write the results to this JSON file")
    re_.set_defaults(func=_cmd_retrieval_eval)

    ex = groups.add_parser("export", help="a trained run as a merged model or a standalone adapter, for serving")
    ex.add_argument("run", help="a train.py run directory")
    ex.add_argument("--merge", metavar="OUT", help="write the base with the adapter merged in (plain transformers)")
    ex.add_argument("--adapter", metavar="OUT", help="write the adapter alone, its base path made loadable")
    ex.add_argument("--base", help="--adapter: base_model_name_or_path to record (default: the run's base)")
    ex.add_argument("--cache-dir", default=_default_cache(),
                    help="the cache of models and indexes (default: $ROLECRAFT_CACHE, else ~/.cache/rolecraft)")
    ex.add_argument("--force", action="store_true", help="replace an existing OUT that RoleCraft wrote earlier")
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
    from rolecraft.console import setup

    setup(quiet=args.quiet, verbose=args.verbose)
    try:
        return int(args.func(args) or 0)
    except RolecraftError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rolecraft data stats DIR | head`
        return 0
    except OSError as e:  # unwritable --out, a file where a directory should be, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{one_line(e.strerror or e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
