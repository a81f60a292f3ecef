"""Benchmarks as lists of items: question, references, kind (RAW/CUS/SPE) and the character.

Every item has a ``key`` that is stable across models and runs (the sample id for RoleInstruct,
a hash of kind/character/question elsewhere), so answers of different models join on it, and a
(character, question) pair for joining files that carry no ids (RoleBench's format).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rolecraft.data.schema import KINDS, stable_id
from rolecraft.errors import ConfigError, DataError
from rolecraft.fileio import read_jsonl


@dataclass
class EvalItem:
    key: str
    kind: str  # raw | general | specific
    character: str | None  # None: no role (a plain general-ability question)
    question: str
    references: list[str]
    category: str | None = None  # e.g. BELLE's task class
    # the conversation before the answer. Items of a RoleInstruct dataset (dialogue samples) hold the
    # turns before ``question`` (Sample.messages; ``speaker`` says who asks it). Benchmarks whose
    # ``question`` is the whole scene as text (CharacterEval; meta["whole_scene"]) hold every turn
    # up to the answer. Either way chat templates drop a turn's ``name``: it is written as ``name：``.
    messages: list[dict] | None = None
    speaker: str | None = None
    # benchmark-specific facts scorers need (CharacterEval: the dimensions the item is scored on)
    meta: dict = field(default_factory=dict)


@dataclass
class Benchmark:
    name: str
    items: list[EvalItem]
    # character -> profile text, where the benchmark has profiles (judge and human sheets show it)
    profiles: dict[str, str] = field(default_factory=dict)
    # RoleInstruct dataset behind the items (model answer sources build the training prompt from it)
    dataset: object | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    # the files the items were read from (their hashes go into the run's provenance.json)
    files: list[Path] = field(default_factory=list)
    # every item before benchmark.max_samples / benchmark.kinds cut the list (predictions for a cut
    # item are not "unmatched"); None = ``items`` is the whole benchmark
    all_items: list[EvalItem] | None = None

    @property
    def total(self) -> int:
        """The benchmark's item count before any limit."""
        return len(self.all_items if self.all_items is not None else self.items)


def chats(bench: Benchmark, prompts=None, template_name: str = "v1") -> list[list[dict]]:
    """The chat each item is answered from: the training prompt (``prompts``, a PromptBuilder over
    the benchmark's dataset) where the item's character is in it, else the opening line + profile.
    A multi-turn item keeps that system turn and is answered after its own ``messages``."""
    from rolecraft.data.prompts import role_messages
    from rolecraft.data.schema import Sample

    out = []
    for it in bench.items:
        known = prompts is not None and it.character in prompts.ds.characters
        if it.messages is not None and it.meta.get("whole_scene"):
            if known:
                system = [{"role": "system", "content": prompts.system(it.character, it.question)}]
            else:
                system = role_messages(it.character, it.question, bench.profiles.get(it.character or ""),
                                       template_name)[:-1]
            out.append(_with_history(system, it.messages))
        elif known:
            out.append(prompts.messages(Sample(it.key, it.kind, it.character, it.question, it.references, "test",
                                               messages=it.messages, speaker=it.speaker)))
        elif it.messages is not None:  # a dialogue item whose character the prompt data does not know
            system = role_messages(it.character, it.question, bench.profiles.get(it.character or ""),
                                   template_name)[:-1]
            final = {"role": "user", "content": it.question, **({"name": it.speaker} if it.speaker else {})}
            out.append(_with_history(system, [*it.messages, final]))
        else:
            out.append(role_messages(it.character, it.question, bench.profiles.get(it.character or ""), template_name))
    return out


def _with_history(system: list[dict], history: list[dict]) -> list[dict]:
    """Our system turn, then the item's turns: a leading system turn of the item's own is appended to
    ours, and a turn's speaker ``name`` (which chat templates drop) is written into its content as
    ``name：content``."""
    turns = [dict(m) for m in history]
    if turns and turns[0]["role"] == "system":
        extra = turns.pop(0)["content"]
        system = [{"role": "system", "content": (system[0]["content"] + "\n" if system else "") + extra}]
    for t in turns:
        name = t.pop("name", None)
        if name and not t["content"].startswith(f"{name}："):
            t["content"] = f"{name}：{t['content']}"
    return system + turns


def item_key(kind: str, character: str | None, question: str) -> str:
    return stable_id(kind, character or "", question.strip())


def _limit(items: list[EvalItem], kinds: list[str], max_per_kind: int | None) -> list[EvalItem]:
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(f"benchmark.kinds: {k!r} is not a kind; use {', '.join(KINDS)}")
    out, seen = [], {}
    for it in items:
        if kinds and it.kind not in kinds:
            continue
        seen[it.kind] = seen.get(it.kind, 0) + 1
        if max_per_kind is None or seen[it.kind] <= max_per_kind:
            out.append(it)
    return out


def _need_root(cfg, what: str) -> Path:
    if not cfg.root:
        raise ConfigError(f"benchmark={cfg.name} needs benchmark.root: {what}")
    p = Path(str(cfg.root)).expanduser()
    if not p.exists():
        raise ConfigError(f"benchmark.root={cfg.root!r}: no such file or directory ({what})")
    return p


def from_dataset(ds, split: str = "test", max_per_kind: int | None = None) -> Benchmark:
    """A split of a loaded RoleInstruct dataset as a benchmark (what train.py evaluates on), kinds in
    the order RAW, CUS, SPE, DLG, each in file order."""
    from rolecraft.data.mixing import evaluation_samples
    from rolecraft.data.prompts import render_profile

    items = [EvalItem(s.id, s.kind, s.character, s.instruction, list(s.references), messages=s.messages,
                      speaker=s.speaker) for s in evaluation_samples(ds, split, max_per_kind)]
    from rolecraft.data.schema import FILES

    profiles = {n: render_profile(c.profile) for n, c in ds.characters.items()}
    files = [Path(ds.root) / n for n in FILES] if ds.root is not None else []
    return Benchmark("roleinstruct", items, profiles, dataset=ds, files=files)


def load_roleinstruct(cfg) -> Benchmark:
    from rolecraft.data import resolve_data_root, schema

    return from_dataset(schema.load(resolve_data_root(str(cfg.root))), cfg.split)


def _rolebench_file(path: Path, kind: str) -> list[EvalItem]:
    items, seen = [], {}
    for line, row in read_jsonl(path):
        where = f"{path}:{line}"
        role, question, refs = row.get("role"), row.get("question"), row.get("generated")
        if not isinstance(role, str) or not isinstance(question, str):
            raise DataError(f"{where}: RoleBench rows need string 'role' and 'question'")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise DataError(f"{where}: 'generated' must be a non-empty list of reference strings")
        key = item_key(kind, role, question)
        if key in seen:
            raise DataError(f"{where}: duplicate (role, question) pair, first at line {seen[key]}")
        seen[key] = line
        items.append(EvalItem(key, kind, role, question.strip(), refs))
    return items


def load_rolebench_zh(cfg) -> Benchmark:
    root = _need_root(cfg, "the RoleBench-zh folder holding general/test.jsonl and role_specific/test.jsonl")
    items: list[EvalItem] = []
    for sub, kind in (("general", "general"), ("role_specific", "specific")):
        f = root / sub / "test.jsonl"
        if not f.is_file():
            raise ConfigError(f"benchmark.root={cfg.root!r}: missing {sub}/test.jsonl (is it the rolebench-zh folder?)")
        items.extend(_rolebench_file(f, kind))
    return Benchmark("rolebench_zh", items, files=[root / "general" / "test.jsonl", root / "role_specific" / "test.jsonl"])


def load_belle(cfg) -> Benchmark:
    p = _need_root(cfg, "BELLE's eval_set.json or its folder")
    if p.is_dir():
        p = p / "eval_set.json"
    items, skipped = [], 0
    # BELLE ships JSON Lines under a .json name; a JSON list is accepted too
    from rolecraft.fileio import read_json, read_text

    if read_text(p).lstrip().startswith("["):
        rows = list(enumerate(read_json(p), 1))
    else:
        rows = list(read_jsonl(p))
    for line, row in rows:
        q, ans = row.get("question"), row.get("std_answer")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{p}:{line}: BELLE rows need a non-empty 'question'")
        if not isinstance(ans, str) or not ans.strip():
            skipped += 1
            continue
        items.append(EvalItem(item_key("raw", None, q), "raw", None, q.strip(), [ans], row.get("class")))
    return Benchmark("belle", items, skipped={"no_reference": skipped}, files=[p])


def load_jsonl(cfg) -> Benchmark:
    from rolecraft.data.schema import parse_sample

    p = _need_root(cfg, "a JSONL file of samples")
    items, seen = [], {}
    for line, row in read_jsonl(p):
        where = f"{p}:{line}"
        row = dict(row)
        row.setdefault("split", cfg.split)
        row.setdefault("id", item_key(str(row.get("kind")), row.get("character"), str(row.get("instruction"))))
        s = parse_sample(row, where)
        if s.split != cfg.split:
            continue
        if s.id in seen:
            raise DataError(f"{where}: duplicate id {s.id!r} (first at line {seen[s.id]})")
        seen[s.id] = line
        items.append(EvalItem(s.id, s.kind, s.character, s.instruction, list(s.references), messages=s.messages,
                              speaker=s.speaker))
    return Benchmark("jsonl", items, files=[p])


def load_charactereval(cfg) -> Benchmark:
    """CharacterEval's three files (its own module: parsing scenes into turns, dimensions, scorers)."""
    from rolecraft.evaluation.charactereval import load

    return load(cfg)


# the one table of benchmarks: a new one is a loader here (or in its own module, registered here)
# plus conf/benchmark/NAME.yaml
BENCHMARKS = {"roleinstruct": load_roleinstruct, "rolebench_zh": load_rolebench_zh, "belle": load_belle,
              "jsonl": load_jsonl, "charactereval": load_charactereval}


def load_benchmark(cfg) -> Benchmark:
    if cfg.name not in BENCHMARKS:
        raise ConfigError(f"benchmark.name={cfg.name!r}: use one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[cfg.name](cfg)
    bench.all_items = list(bench.items)
    bench.items = _limit(bench.items, list(cfg.kinds), cfg.max_samples)
    if not bench.items:
        raise DataError(f"benchmark={cfg.name} (root {cfg.root}): no items to evaluate"
                        + (f" in split {cfg.split!r}" if cfg.name in ("roleinstruct", "jsonl") else ""))
    return bench
