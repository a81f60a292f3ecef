"""The answers to rate: one model's answers from any run directory (or samples file), the
character profiles found with them, and the questions every model answered.

Run directories are read through :mod:`rolecraft.rundir`, so a train.py run (``predictions.jsonl``
with ``id``) and an evaluate.py run (``samples.jsonl`` with ``key``) read alike. Profiles come
from ``characters.json`` beside the answers (evaluate.py writes it) or, for a train.py run, from
the dataset its ``config.yaml`` names (``data.root``), best effort.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rolecraft.evaluation.human.rubric import KINDS, HumanEvalError


@dataclass
class Answer:
    key: str
    character: str  # "" for a question without a role
    kind: str
    question: str
    prediction: str
    profile: str | None  # from the row, if it carries one
    where: str  # file:line


@dataclass
class Run:
    """One model's answers by key, the profiles found with them, and notes on what was missing."""

    name: str
    path: Path
    answers: dict[str, Answer]
    profiles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_answers_arg(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path)."""
    name, sep, path = spec.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise HumanEvalError(f"--answers {spec!r}: expected NAME=PATH (a model name, '=', a run directory of "
                             f"train.py or evaluate.py, or a samples .jsonl), e.g. --answers base=runs/eval-base")
    return name, Path(path).expanduser()


def profile_text(value: object) -> str:
    """A profile as annotators read it: text as is, a {field: value} dict as "field：value" lines."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        from rolecraft.data.prompts import render_profile

        return render_profile({k: profile_text(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return "；".join(profile_text(v) for v in value)
    return str(value)


def _question_from_prompt(prompt: object) -> str | None:
    """The last user turn of a prompt: for train.py runs older than the ``question`` field, which
    kept only the prompt (chat messages, or rendered by a ChatML/Llama-3/GLM/Baichuan-2 template)."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1].strip() if users and isinstance(users[-1], str) and users[-1].strip() else None
    if not isinstance(prompt, str):
        return None
    for pattern in (r"<\|im_start\|>user\n(.*?)<\|im_end\|>",
                    r"<\|start_header_id\|>user<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>",
                    r"<\|user\|>\n?(.*?)(?=<\|(?:assistant|user|system|observation)\|>|$)",
                    r"<reserved_106>(.*?)(?=<reserved_10[67]>|$)"):
        found = re.findall(pattern, prompt, re.DOTALL)
        if found and found[-1].strip():
            return found[-1].strip()
    return None


def _question_of(row: dict, where: str) -> str:
    for name in ("question", "instruction"):
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if "prompt" in row:
        q = _question_from_prompt(row["prompt"])
        if q is not None:
            return q
        raise HumanEvalError(f"{where}: no question: no 'question' or 'instruction' field, and no user turn found in "
                             f"'prompt' (a list of chat messages, or a ChatML/GLM/Llama-3/Baichuan-2 rendered prompt); "
                             f"write the question into a 'question' field")
    raise HumanEvalError(f"{where}: no question: the row needs a non-empty 'question' (or 'instruction', or a 'prompt' "
                         f"with a user turn)")


def _answer(row: dict, where: str) -> Answer:
    """One row (already in the rundir layout: ``key``) checked and read."""
    from rolecraft.data.schema import stable_id

    kind = row.get("kind")
    if kind not in KINDS:
        raise HumanEvalError(f"{where}: 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
    character = row.get("character")
    if character is None:
        character = ""
    if not isinstance(character, str):
        raise HumanEvalError(f"{where}: 'character' must be a string, got {type(character).__name__}")
    question = _question_of(row, where)
    prediction = row.get("prediction")
    if prediction is None:
        prediction = ""
    if not isinstance(prediction, str):
        raise HumanEvalError(f"{where}: 'prediction' must be a string, got {type(prediction).__name__}")
    key = row.get("key")
    if key is None:  # a hand-made file: the benchmark's key (evaluation.benchmarks.item_key)
        key = stable_id(kind, character, question.strip())
    if not isinstance(key, str) or not key.strip():
        raise HumanEvalError(f"{where}: 'key' must be a non-empty string, got {key!r}")
    profile = row.get("profile")
    return Answer(key, character.strip(), kind, question, prediction.strip(),
                  profile_text(profile) if profile is not None else None, where)


def read_answers(path: Path, name: str) -> dict[str, Answer]:
    """Every row of a samples file (either layout) by key; a bad row raises with file:line."""
    from rolecraft.fileio import read_jsonl
    from rolecraft.rundir import normalise_row

    rows: dict[str, Answer] = {}
    for lineno, row in read_jsonl(path):
        a = _answer(normalise_row(row), f"{path}:{lineno}")
        if a.key in rows:
            raise HumanEvalError(f"{a.where}: duplicate key {a.key!r} (first at {rows[a.key].where}); each question "
                                 f"once per run")
        rows[a.key] = a
    if not rows:
        raise HumanEvalError(f"{path}: no answers in this file (--answers {name}=...)")
    return rows


def _read_profiles(path: Path) -> dict[str, str]:
    """{name: profile text} from a characters.json mapping or a dataset's characters.jsonl."""
    from rolecraft.fileio import read_json, read_jsonl

    if path.suffix == ".jsonl":
        out: dict[str, str] = {}
        for lineno, row in read_jsonl(path):
            if not isinstance(row.get("name"), str):
                raise HumanEvalError(f"{path}:{lineno}: a character row needs a string 'name'")
            out[row["name"]] = profile_text(row.get("profile"))
        return out
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise HumanEvalError(f"{path}: expected a JSON object {{character name: profile}}, got {type(obj).__name__}")
    return {str(k): profile_text(v) for k, v in obj.items()}


def load_profiles(spec: str) -> dict[str, str]:
    """``--profiles``: a JSON {name: profile} file, a dataset directory, or 'embedded:demo'."""
    from rolecraft.data import resolve_data_root

    path = resolve_data_root(spec)
    if path.is_dir():
        for name in ("characters.json", "characters.jsonl"):
            if (path / name).is_file():
                return _read_profiles(path / name)
        raise HumanEvalError(f"--profiles {spec}: no characters.json or characters.jsonl in this directory")
    if not path.is_file():
        raise HumanEvalError(f"--profiles {spec}: no such file or directory")
    return _read_profiles(path)


def _dataset_profiles(run_dir: Path) -> tuple[dict[str, str], str | None]:
    """Profiles of the dataset a train.py run was trained on (``data.root`` in its config.yaml),
    and a note when that dataset cannot be read (moved, relative to another directory ...)."""
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.errors import RolecraftError
    from rolecraft.rundir import read_config

    data = read_config(run_dir).get("data")
    root = data.get("root") if isinstance(data, dict) else None
    if not isinstance(root, str) or not root:
        return {}, None
    try:
        ds = schema.load(resolve_data_root(root))
    except (RolecraftError, OSError) as e:
        return {}, f"profiles of the dataset in its config.yaml (data.root={root}) not read: {str(e)[:160]}"
    return {name: profile_text(c.profile) for name, c in ds.characters.items()}, None


def load_run(name: str, path: Path) -> Run:
    """One model's answers (by key) and the profiles found with them; ``path`` is a run directory
    of train.py or evaluate.py, or a samples / predictions .jsonl file."""
    from rolecraft.rundir import LEGACY_SAMPLES, SAMPLES, samples_path

    if path.is_dir():
        answers_file = samples_path(path)
        if answers_file is None:
            raise HumanEvalError(f"--answers {name}={path}: no {SAMPLES} or {LEGACY_SAMPLES} in this directory; pass "
                                 f"a finished run directory (train.py or evaluate.py) or a samples .jsonl file")
    elif path.is_file():
        answers_file = path
    else:
        raise HumanEvalError(f"--answers {name}={path}: no such file or directory")
    run = Run(name, path, read_answers(answers_file, name))
    folder = answers_file.parent
    for cand in ("characters.json", "characters.jsonl"):
        if (folder / cand).is_file():
            run.profiles = _read_profiles(folder / cand)
            break
    else:
        run.profiles, note = _dataset_profiles(folder)
        if note:
            run.notes.append(f"{name}: {note}")
    return run


def join_runs(runs: dict[str, Run], kinds: Sequence[str]) -> dict[str, dict[str, Answer]]:
    """The questions of ``kinds`` that every model answered: {key: {model: answer}}, sorted by key.

    Rows are matched on ``key``; a question whose key some run lacks is matched on (character,
    question) instead (runs whose keys were made differently), under the first run's key.
    """
    models = list(runs)
    pools = {m: {k: a for k, a in r.answers.items() if a.kind in kinds} for m, r in runs.items()}
    by_text = {m: {} for m in models}
    for m in models:
        for a in pools[m].values():
            by_text[m].setdefault((a.character, a.question), []).append(a)
    joined: dict[str, dict[str, Answer]] = {}
    for k, first in pools[models[0]].items():
        found = {models[0]: first}
        for m in models[1:]:
            b = pools[m].get(k)
            if b is None:
                same = by_text[m].get((first.character, first.question), [])
                b = same[0] if len(same) == 1 and same[0].kind == first.kind else None
            if b is None:
                break
            if (first.character, first.kind) != (b.character, b.kind):
                raise HumanEvalError(f"key {k!r} is ({first.kind}, {first.character!r}) at {first.where} but "
                                     f"({b.kind}, {b.character!r}) at {b.where}; the runs do not answer the same "
                                     f"benchmark")
            found[m] = b
        else:
            joined[k] = found
    if not joined:
        parts = []
        for m in models:
            if pools[m]:
                parts.append(f"{m} has {len(pools[m])} (e.g. {', '.join(sorted(pools[m])[:3])})")
            else:
                present = sorted({a.kind for a in runs[m].answers.values()})
                parts.append(f"{m} has 0 of kind {','.join(kinds)} (kinds present: {','.join(present)})")
        raise HumanEvalError(f"no question of kind {','.join(kinds)} was answered by every model: {'; '.join(parts)}; "
                             f"the runs must answer the same benchmark (the same 'key' values, or the same "
                             f"character and question)")
    return dict(sorted(joined.items()))
