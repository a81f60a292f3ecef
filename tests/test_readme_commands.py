"""The README is a contract: every command in its fenced ```bash blocks is run here, or listed below
with the reason it is not.

README.md is parsed at test time: a command is one line of a ```bash block (continuation lines
joined, comment lines skipped, an inline ``# comment`` stripped, whitespace collapsed). Each one must
be a key of ``COMMANDS``, and every key must still be in the README, so editing a command there
without editing this table (or breaking it) fails.

How a command is handled (``kind``):

- ``run``: run for real (``@pytest.mark.slow``, one sequential test, in README order) on the
  embedded default, in a subprocess exactly as a user types it, with placeholders (``RUN_DIR``,
  ``preds.jsonl`` …) replaced by what earlier commands made, small overrides appended by this test
  (``trainer.max_steps=2``, ``data.max_eval_samples=4``, ``benchmark.max_samples=2`` …; never a key
  the command itself sets), outputs in temp dirs, and endpoints pointed at the project's loopback
  fake OpenAI server (``rolecraft.testing.fake_openai``).
- ``compose``: a Hydra command that needs a GPU, real weights, a cluster or hours: it is composed as
  typed (``--cfg job`` in a subprocess: the command line, its quoting, the schema and the typed
  choices) and its config passes the entry point's range checks (``config_checks``) in this
  process. A ``-m`` grid is composed at each of its points. Fast, not marked slow.
- ``shared``: needs the authors' data in ../shared/data: run for real where it exists (slow),
  skipped with the reason elsewhere.
- ``not run``: the reason is in ``reason`` (installs, the test suite itself, W&B server, SLURM, vLLM).

Which are run for real: train (one run, then the exact resume from its checkpoint), evaluate with
every answer source that runs offline (tiny model, the trained run, the fake endpoint, a
predictions file), chat from the trained run and from the fake endpoint, the sweep commands (run-local
as ``--dry-run``), the report over the trained run, human export + import, data validate/stats on
the demo, construct's dry run and two stages against the fake server. The others are composed.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA, cli_env, run_fresh

README = REPO / "README.md"

# appended to real runs of each entry point (a key the command sets itself is not appended)
SMALL = {
    "train.py": ["trainer.max_steps=2", "data.max_eval_samples=4", "eval.generation.max_new_tokens=8",
                 "trainer.val_check_interval=2", "trainer.checkpoint_every_n_steps=2",
                 "trainer.enable_progress_bar=false"],
    "evaluate.py": ["benchmark.max_samples=2", "generation.max_new_tokens=8"],
    "chat.py": ["generation.max_new_tokens=8"],
    "construct.py": ["construct.progress=false", "construct.qa.rounds=1", "construct.qa.questions=2"],
}


@dataclass(frozen=True)
class Cmd:
    kind: str  # run | compose | shared | not run
    reason: str = ""  # why it is not run for real (compose / not run / shared)
    use: str | None = None  # the command as run: README text with placeholders filled ({name} from the context)
    append: tuple[str, ...] = ()  # extra arguments this test adds (outputs, endpoints)
    stdin: str | None = None
    env: dict = field(default_factory=dict)


GPU_WEIGHTS = "needs a GPU and the real base model's weights (GBs from the hub)"
WEIGHTS = "needs the real base model's weights (GBs from the hub)"

COMMANDS: dict[str, Cmd] = {
    # ---- Quick start
    'pip install torch==2.13.0 && pip install -e ".[dev]" && python train.py':
        Cmd("not run", "installs packages from the network; `python train.py` itself is run below"),
    'pip install torch==2.13.0 && pip install -e ".[dev]" && pytest':
        Cmd("not run", "installs packages and runs this very test suite"),
    # ---- Installing: extras by use
    "pip install -e .":
        Cmd("not run", "installs packages; tests/test_extras.py runs the core commands with the training stack unimportable"),
    'pip install -e ".[train,wandb]"':
        Cmd("not run", "installs packages from the network (a GPU machine)"),
    'pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install -e ".[train]"':
        Cmd("not run", "installs packages from PyTorch's index, which this machine cannot reach"),
    # ---- Configuration
    "python train.py data=hybrid emotions=off":
        Cmd("run", append=("hydra.run.dir={tmp}/runs/t1",)),
    "python train.py -m data=general,specific,hybrid emotions=on,off":
        Cmd("compose", "six training runs (tests/test_train_e2e.py runs the grid); composed at each point"),
    "python train.py --cfg job":
        Cmd("run"),
    "python train.py lora=r16 optim.lr=1e-4 trainer.max_steps=300":
        Cmd("compose", "300 steps: minutes on this CPU; the same code path as the run above"),
    "python train.py trainer.max_steps=0":
        Cmd("compose", "the untrained baseline: the same evaluation as the runs above without fitting"),
    "python train.py ckpt_path=outputs/…/checkpoints/last.ckpt":
        Cmd("run", use="python train.py ckpt_path={t1}/checkpoints/last.ckpt",
            append=("trainer.max_steps=4", "hydra.run.dir={tmp}/runs/t1_resumed")),
    "python train.py 'ckpt_path=\"multirun/…/0_data=general,emotions=on/checkpoints/last.ckpt\"'":
        Cmd("compose", "a multirun folder's checkpoint, quoted for Hydra; resuming itself is run above",
            use="python train.py 'ckpt_path=\"multirun/x/0_data=general,emotions=on/checkpoints/last.ckpt\"'"),
    # ---- Multi-turn dialogue (run end to end in tests/test_dialogue.py)
    "python train.py data.dialogue=on":
        Cmd("compose", "the same run as tests/test_dialogue.py's end-to-end dialogue test"),
    "python train.py data=dialogue data.dialogue_loss=all":
        Cmd("compose", "the same run as tests/test_dialogue.py's dialogue-only test"),
    "python chat.py run=outputs/DATE/TIME character=罗火旺 replay=scene.jsonl":
        Cmd("compose", "replay and /as run against the fake endpoint in tests/test_dialogue.py"),
    # ---- Data commands
    "rolecraft data import roleinstruct-v1 ../shared/data/roleinstruct-v1/role --out data/roleinstruct-v1 "
    "[--report defects.json] [--force] [--allow-partial]":
        Cmd("shared", use="rolecraft data import roleinstruct-v1 ../shared/data/roleinstruct-v1/role "
                          "--out {tmp}/data/roleinstruct-v1 --report {tmp}/defects.json"),
    "rolecraft data validate data/roleinstruct-v1":
        Cmd("run", use="rolecraft data validate embedded:demo"),
    "rolecraft data stats data/roleinstruct-v1 [--json]":
        Cmd("run", use="rolecraft data stats embedded:demo --json"),
    "python train.py data.root=data/roleinstruct-v1":
        Cmd("compose", "training on 27,893 samples takes hours on a CPU"),
    "rolecraft data import cped ../shared/data/cped/valid_split.csv --out data/cped [--mapping map.json] "
    "[--min-utterances 20] [--force]":
        Cmd("shared", use="rolecraft data import cped ../shared/data/cped/valid_split.csv --out {tmp}/data/cped "
                          "--min-utterances 20"),
    "rolecraft data import messages chats.jsonl --out data/chats [--format openai|sharegpt|alpaca] [--character NAME] "
    "[--character-field KEY] [--profile profile.json] [--single-kind specific] [--report defects.json] [--allow-partial]":
        Cmd("not run", "needs a chats file; tests/test_import_messages.py imports hand-written files in all three "
                       "formats through this command (and the export below reimported)"),
    "rolecraft data export messages data/chats --format sharegpt --out chats.sharegpt.jsonl":
        Cmd("run", use="rolecraft data export messages {demo} --format sharegpt --out {tmp}/chats.sharegpt.jsonl"),
    "rolecraft data agreement GOLD OTHER [THIRD ...] [--json agreement.json] [--labels]":
        Cmd("run", use="rolecraft data agreement {demo} {demo}/script.jsonl {demo} --json {tmp}/agreement.json --labels"),
    # ---- Building data with an LLM
    "export OPENAI_API_KEY=...":
        Cmd("not run", "sets a shell variable; the commands that read it are run with a test key"),
    "python construct.py stage=all construct.input=data/raw construct.out=data/enriched construct.dry_run=true":
        Cmd("run", use="python construct.py stage=all construct.input=embedded:demo "
                       "construct.out={tmp}/enriched_dry construct.dry_run=true",
            append=("construct.journal={tmp}/journal.sqlite",)),
    "python construct.py stage=all construct.input=data/raw construct.out=data/enriched":
        Cmd("compose", "all four stages over the demo: thousands of requests; tests/test_construct.py runs every "
                       "stage against the fake server, and the two commands below run here"),
    "python construct.py stage=annotate llm=local llm.base_url=http://127.0.0.1:8000/v1 "
    "llm.model=Qwen/Qwen2.5-72B-Instruct":
        Cmd("run", use="python construct.py stage=annotate llm=local llm.base_url={construct_url} "
                       "llm.model=Qwen/Qwen2.5-72B-Instruct",
            append=("construct.input=embedded:demo", "construct.out={tmp}/annotated",
                    "construct.journal={tmp}/journal.sqlite", "construct.annotate.overwrite=true",
                    "construct.characters=[罗火旺]")),
    "python construct.py stage=qa construct.characters=[罗火旺]":
        Cmd("run", append=("construct.input=embedded:demo", "construct.out={tmp}/qa", "llm.base_url={construct_url}",
                           "construct.journal={tmp}/journal.sqlite"),
            env={"OPENAI_API_KEY": "{key}"}),
    # ---- Training real models
    "python train.py model=glm4_9b trainer=gpu data.root=data/roleinstruct-v1": Cmd("compose", GPU_WEIGHTS),
    "python train.py model=glm4_9b trainer=fsdp": Cmd("compose", "needs GPUs and the real weights; tests/test_fsdp.py runs trainer=fsdp_cpu"),
    "python train.py model=qwen2_5_7b trainer=gpu optim.micro_batch_size=1": Cmd("compose", GPU_WEIGHTS),
    "python train.py model=qwen2_5_7b trainer=ddp": Cmd("compose", "needs GPUs and the real weights"),
    "srun python train.py model=qwen2_5_7b trainer=ddp trainer.num_nodes=2 trainer.devices=8":
        Cmd("compose", "needs a SLURM allocation of 2 nodes × 8 GPUs; the train.py part is composed",
            use="python train.py model=qwen2_5_7b trainer=ddp trainer.num_nodes=2 trainer.devices=8"),
    # ---- Evaluation suite
    "python evaluate.py":
        Cmd("run", append=("hydra.run.dir={tmp}/ev/tiny",)),
    "python evaluate.py answers=run answers.path=outputs/2026-11-26/10-00-00":
        Cmd("run", use="python evaluate.py answers=run answers.path={t1}", append=("hydra.run.dir={tmp}/ev/run",)),
    "python evaluate.py answers=model model=qwen2_5_7b model.name_or_path=/models/Qwen2.5-7B-Instruct":
        Cmd("compose", WEIGHTS),
    "OPENAI_API_KEY=... python evaluate.py answers=openai answers.model=gpt-4o":
        Cmd("run", use="OPENAI_API_KEY={key} python evaluate.py answers=openai answers.model=gpt-4o",
            append=("answers.endpoint.base_url={chat_url}", "hydra.run.dir={tmp}/ev/openai")),
    "python evaluate.py answers=predictions answers.path=preds.jsonl":
        Cmd("run", use="python evaluate.py answers=predictions answers.path={tmp}/ev/tiny/samples.jsonl",
            append=("hydra.run.dir={tmp}/ev/preds",)),
    "python evaluate.py benchmark=charactereval benchmark.root=data/charactereval answers=run answers.path=RUN_DIR "
    "judge=pointwise judge.model=gpt-4o":
        Cmd("compose", "needs CharacterEval's files, a trained run and a judge endpoint; tests/test_charactereval.py "
                       "runs the benchmark on synthetic files with the tiny model, the fake judge and a tiny reward model"),
    "python evaluate.py benchmark=rolebench_zh benchmark.root=../shared/data/rolebench-zh answers=predictions "
    "answers.path=FILE rouge.tokenizer=jieba rouge.references=max hydra.run.dir=OUT":
        Cmd("shared", use="python evaluate.py benchmark=rolebench_zh benchmark.root=../shared/data/rolebench-zh "
                          "answers=predictions answers.path={tmp}/rolegpt_baseline.jsonl rouge.tokenizer=jieba "
                          "rouge.references=max hydra.run.dir={tmp}/ev/rolebench"),
    # ---- Human evaluation
    "rolecraft human export --answers ours=RUN_DIR_A --answers gpt4=RUN_DIR_B --out sheets/ --n 50 --annotators 3":
        Cmd("run", use="rolecraft human export --answers ours={t1} --answers gpt4={tmp}/ev/openai "
                       "--out {tmp}/sheets --n 50 --annotators 3"),
    "rolecraft human import sheets/sheet_*.csv --key sheets/key.json --out human.json":
        Cmd("run", use="rolecraft human import {sheets} --key {tmp}/sheets/key.json --out {tmp}/human.json"),
    # ---- Chat and serving
    "python chat.py run=outputs/DATE/TIME character=罗火旺":
        Cmd("run", use="python chat.py run={t1} character=罗火旺", stdin="你好\n/quit\n"),
    "python chat.py source=model model=qwen2_5_7b retrieval=lexical": Cmd("compose", WEIGHTS),
    "python chat.py source=openai openai_model=gpt-4o data.root=data/roleinstruct-v1 character=...":
        Cmd("run", use="python chat.py source=openai openai_model=gpt-4o data.root=embedded:demo character=罗火旺",
            append=("endpoint.base_url={chat_url}",), stdin="你好\n/quit\n", env={"OPENAI_API_KEY": "{key}"}),
    "vllm serve OUT --served-model-name luo-huowang":
        Cmd("not run", "vLLM is not a dependency and serves on a GPU; the fake server stands in for it below"),
    "vllm serve Qwen/Qwen2.5-7B-Instruct --enable-lora --lora-modules luo-huowang=ADAPTER_OUT":
        Cmd("not run", "vLLM with the real base weights on a GPU"),
    "python evaluate.py answers=openai answers.model=luo-huowang answers.endpoint.base_url=http://localhost:8000/v1 "
    "answers.endpoint.api_key_env=''":
        Cmd("run", use="python evaluate.py answers=openai answers.model=luo-huowang "
                       "answers.endpoint.base_url={chat_url} answers.endpoint.api_key_env=''",
            append=("hydra.run.dir={tmp}/ev/served",)),
    "python chat.py source=openai openai_model=luo-huowang endpoint.base_url=http://localhost:8000/v1 "
    "endpoint.api_key_env=''":
        Cmd("run", use="python chat.py source=openai openai_model=luo-huowang endpoint.base_url={chat_url} "
                       "endpoint.api_key_env=''", stdin="你好\n/quit\n"),
    # ---- Experiments, sweeps and reports
    "wandb sweep sweeps/table5_emotions.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID":
        Cmd("not run", "W&B sweeps need a W&B server (DESIGN fact 3); the sweep files are checked by "
                       "tests/test_sweeps.py"),
    "rolecraft sweep generate [--check]":
        Cmd("run", use="rolecraft sweep generate --check"),
    "rolecraft sweep expand sweeps/table5_emotions.yaml":
        Cmd("run"),
    "rolecraft sweep run-local sweeps/table5_emotions.yaml --runs-dir runs [--set model=tiny --set trainer=cpu]":
        Cmd("run", use="rolecraft sweep run-local sweeps/table5_emotions.yaml --runs-dir {tmp}/grid "
                       "--set model=tiny --set trainer=cpu --dry-run"),
    "python train.py -m emotions=on,off seed=1,2,3 hydra/launcher=slurm hydra.launcher.partition=gpu":
        Cmd("compose", "needs a SLURM cluster (tests/test_sweeps.py runs a grid through submitit's local launcher)"),
    "rolecraft report table5_emotions --runs runs [--wandb ENTITY/PROJECT] --out reports/table5":
        Cmd("run", use="rolecraft report table5_emotions --runs {tmp}/runs --out {tmp}/reports/table5"),
}


# ---- reading the README ----------------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (a ``#`` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_commands(text: str | None = None) -> list[tuple[int, str]]:
    """(line number, command) for every command in the README's ```bash blocks."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    out, in_block, pending, start = [], False, "", 0
    for no, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("```"):
            in_block = (not in_block) and s[3:].strip() in ("bash", "sh", "shell")
            if not in_block and s[3:].strip() == "" and pending:
                out.append((start, pending))
                pending = ""
            continue
        if not in_block:
            continue
        if not pending:
            if not s or s.startswith("#"):
                continue
            start = no
        body = _strip_comment(s).rstrip()
        if body.endswith("\\"):
            pending += body[:-1].rstrip() + " "
            continue
        cmd = " ".join((pending + body).split())
        pending = ""
        if cmd:
            out.append((start, cmd))
    return out


def test_the_parser_reads_blocks_continuations_and_comments():
    text = ("x\n```bash\n# a comment\npython a.py k=v   # what it does\npython b.py \\\n    k=v \\\n  j=1\n```\n"
            "```\nnot a command\n```\n```bash\nrolecraft x 'a # b'\n```\n")
    assert readme_commands(text) == [(4, "python a.py k=v"), (5, "python b.py k=v j=1"), (13, "rolecraft x 'a # b'")]


def test_every_readme_command_is_run_or_listed_with_a_reason():
    found = readme_commands()
    assert len(found) > 30, "the README parser found too few commands"
    unknown = [f"README.md:{no}: {cmd}" for no, cmd in found if cmd not in COMMANDS]
    assert not unknown, ("commands in the README that this test neither runs nor lists (add each to COMMANDS in "
                         "tests/test_readme_commands.py):\n" + "\n".join(unknown))
    stale = sorted(set(COMMANDS) - {cmd for _, cmd in found})
    assert not stale, "COMMANDS lists commands the README no longer has:\n" + "\n".join(stale)
    for cmd, how in COMMANDS.items():
        assert how.kind in ("run", "compose", "shared", "not run"), cmd
        assert how.kind == "run" or how.reason or how.kind == "shared", f"no reason given for not running: {cmd}"


# ---- running one command ------------------------------------------------------------------------


def _argv(cmd: str, ctx: dict) -> tuple[dict, list[str]]:
    """(extra environment, argv) of a command line: env assignments first, then the program."""
    words = shlex.split(cmd.format(**ctx))
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    if words[0] == "python" and words[1].endswith(".py"):
        return env, [sys.executable, str(REPO / words[1]), *words[2:]]
    if words[0] == "rolecraft":
        return env, [sys.executable, "-m", "rolecraft.cli", *words[1:]]
    raise AssertionError(f"not a python/rolecraft command: {cmd}")


def _without_optional(cmd: str) -> str:
    """The README's ``[--opt ...]`` parts dropped."""
    return " ".join(re.sub(r"\s\[[^\]]*\]", "", cmd).split())


def _small(argv: list[str], program: str) -> list[str]:
    typed = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    return [o for o in SMALL.get(program, []) if o.split("=", 1)[0] not in typed]


def run_command(readme_cmd: str, how: Cmd, ctx: dict, cache: Path) -> subprocess.CompletedProcess:
    cmd = how.use or _without_optional(readme_cmd)
    env_extra, argv = _argv(cmd, ctx)
    program = Path(argv[1]).name if argv[1].endswith(".py") else "rolecraft"
    appended = [a.format(**ctx) for a in how.append]
    small = _small(argv + appended, program) if how.kind == "run" and "--cfg" not in argv else []
    argv += appended + small  # shared-data commands run as written: the README quotes their full results
    env = cli_env(cache, ctx["tmp"] / "outputs")
    env.update({k: v.format(**ctx) for k, v in how.env.items()})
    env.update(env_extra)
    # a fresh interpreter, not the warm one of tests/warm_python.py: exactly what the user types
    return run_fresh(argv, cwd=REPO, env=env, capture_output=True, text=True, input=how.stdin, timeout=600)


# ---- compose: every Hydra command that is not run for real --------------------------------------------

ENTRY = {"train.py": "train", "evaluate.py": "evaluate", "chat.py": "chat", "construct.py": "construct"}


def _grid_points(args: list[str]) -> list[list[str]]:
    """A ``-m`` command's points: each ``key=a,b`` (outside brackets and quotes) swept."""
    choices = []
    for a in args:
        key, sep, value = a.partition("=")
        simple = sep and "," in value and not re.search(r"[\[\]{}'\"()]", value)
        choices.append([f"{key}={v}" for v in value.split(",")] if simple else [a])
    return [list(p) for p in itertools.product(*choices)]


COMPOSED = [c for c, h in COMMANDS.items() if h.kind == "compose"]


@pytest.mark.parametrize("readme_cmd", COMPOSED, ids=[f"compose{i}" for i in range(len(COMPOSED))])
def test_a_command_not_run_composes_and_passes_the_config_checks(readme_cmd, cache_dir, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rolecraft import config, config_checks
    from rolecraft.paths import config_dir, quote_non_ascii_overrides

    how = COMMANDS[readme_cmd]
    _, argv = _argv(how.use or readme_cmd, {"tmp": tmp_path})
    script, args = Path(argv[1]).name, argv[2:]
    multirun = "-m" in args
    args = [a for a in args if a not in ("-m", "--multirun")]
    # the command line as typed composes (a -m grid: its first point; --cfg cannot be combined with -m)
    first = _grid_points(args)[0] if multirun else args
    r = subprocess.run([sys.executable, str(REPO / script), *first, "--cfg", "job"], cwd=REPO,
                       env=cli_env(cache_dir, tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{readme_cmd}\n{r.stderr[-2000:]}"
    # every point passes the entry point's range checks
    config.register()
    check = getattr(config_checks, f"check_{ENTRY[script]}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            for point in (_grid_points(args) if multirun else [args]):
                overrides = [o for o in quote_non_ascii_overrides(point) if not o.startswith(("hydra.", "hydra/"))]
                check(compose(config_name=ENTRY[script], overrides=overrides))
    finally:
        GlobalHydra.instance().clear()


# ---- run: the commands run for real, in README order ----------------------------------------------------


def _fill_sheets(sheets: Path) -> list[str]:
    """Annotate every exported sheet with valid ratings (3 on every criterion)."""
    files = sorted(sheets.glob("sheet_*.csv"))
    for f in files:
        with open(f, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        head = rows[0]
        cols = [i for i, h in enumerate(head) if h.lower() in ("ce", "consistency", "ed")]
        assert len(cols) == 3, head
        for row in rows[1:]:
            for i in cols:
                row[i] = "3"
        with open(f, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(rows)
    return [str(f) for f in files]


def _check_results(readme_cmd: str, ctx: dict, r: subprocess.CompletedProcess) -> None:
    """What some commands must have left behind, beyond exit 0."""
    tmp = ctx["tmp"]
    if readme_cmd == "python train.py data=hybrid emotions=off":
        assert (tmp / "runs" / "t1" / "metrics.json").is_file() and (tmp / "runs" / "t1" / "provenance.json").is_file()
        ctx["t1"] = str(tmp / "runs" / "t1")
    elif readme_cmd.startswith("python train.py ckpt_path=outputs"):
        m = json.loads((tmp / "runs" / "t1_resumed" / "metrics.json").read_text(encoding="utf-8"))
        assert m["train/steps"] == 4
    elif readme_cmd.startswith("rolecraft human export"):
        ctx["sheets"] = " ".join(_fill_sheets(tmp / "sheets"))
    elif readme_cmd.startswith("rolecraft report"):
        md = (tmp / "reports" / "table5" / "table.md").read_text(encoding="utf-8")
        # tiny-model runs: the paper's values are greyed with the note saying what ours are
        assert "runs use model=tiny, data=embedded:demo; paper: ChatGLM3-6B" in md
    elif "answers=predictions" in readme_cmd and "rolebench" not in readme_cmd:
        m = json.loads((tmp / "ev" / "preds" / "metrics.json").read_text(encoding="utf-8"))
        assert m["answers/matched"] == m["benchmark/evaluated"] and m["answers/unmatched"] == 0


@pytest.fixture(scope="module")
def servers():
    import uuid

    from rolecraft.testing.fake_construct import construct_responder
    from rolecraft.testing.fake_openai import FakeOpenAI

    with FakeOpenAI() as chat, FakeOpenAI(responder=construct_responder) as construct:
        yield {"chat_url": chat.base_url, "construct_url": construct.base_url, "key": "rc-test-" + uuid.uuid4().hex}


@pytest.mark.slow
def test_the_readme_commands_run(tmp_path, cache_dir, servers):
    ctx = {"tmp": tmp_path, "demo": str(REPO / "src" / "rolecraft" / "data" / "demo"), **servers}
    failures = []
    ran = 0
    for _, readme_cmd in readme_commands():
        how = COMMANDS[readme_cmd]
        if how.kind != "run":
            continue
        r = run_command(readme_cmd, how, ctx, cache_dir)
        ran += 1
        if r.returncode != 0:
            failures.append(f"{readme_cmd}\n  exit {r.returncode}: {(r.stderr or r.stdout).strip()[-1500:]}")
            if "t1" not in ctx and "emotions=off" in readme_cmd:
                break  # the later commands need this run
            continue
        try:
            _check_results(readme_cmd, ctx, r)
        except (AssertionError, OSError, KeyError) as e:
            failures.append(f"{readme_cmd}\n  {type(e).__name__}: {e}")
    assert not failures, "README commands that failed as written:\n" + "\n".join(failures)
    assert ran == sum(1 for h in COMMANDS.values() if h.kind == "run")


@pytest.mark.slow
def test_the_readme_commands_on_the_shared_data(tmp_path, cache_dir):
    if not SHARED_DATA.exists():
        pytest.skip(f"needs the public data at {SHARED_DATA} (present on CI and dev machines, absent on a fresh clone)")
    rb = SHARED_DATA / "rolebench-zh"
    # FILE of the RoleBench command: the two rolegpt_baseline.jsonl files concatenated, as the README says
    (tmp_path / "rolegpt_baseline.jsonl").write_bytes(b"".join(
        (rb / sub / "rolegpt_baseline.jsonl").read_bytes().rstrip(b"\n") + b"\n" for sub in ("general", "role_specific")))
    ctx = {"tmp": tmp_path}
    failures = []
    for _, readme_cmd in readme_commands():
        how = COMMANDS[readme_cmd]
        if how.kind != "shared":
            continue
        r = run_command(readme_cmd, how, ctx, cache_dir)
        if r.returncode != 0:
            failures.append(f"{readme_cmd}\n  exit {r.returncode}: {r.stderr.strip()[-1500:]}")
    assert not failures, "README commands that failed as written:\n" + "\n".join(failures)
    # the README's RoleGPT row (jieba, max over references) reproduces
    m = json.loads((tmp_path / "ev" / "rolebench" / "metrics.json").read_text(encoding="utf-8"))
    assert round(m["rouge_l/cus"], 4) == 0.4722 and round(m["rouge_l/spe"], 4) == 0.2354
    assert m["answers/unmatched"] == 5944 and m["answers/missing"] == 0
