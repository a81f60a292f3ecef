"""CharacterEval (Tu et al. 2024, arXiv 2401.01275): multi-turn Chinese role-play scenes, each
scored on a subset of twelve dimensions in three groups.

The published data folder holds ``test_data.jsonl`` (a JSON array despite the name: ``id``,
``role``, ``novel_name``, ``context``), ``character_profiles.json`` (name -> profile object) and
``id2metric.jsonl`` (one JSON object: item id -> ``[[metric, 中文名], ...]``). Each scene becomes a
conversation: the role's own lines are assistant turns, every other speaker a user turn written
``name：utterance`` (chat templates drop a ``name`` field), consecutive lines of one side merged;
lines without a speaker are kept as narration on the user side and counted.

Scorers: the LLM judge (``judge=pointwise``: one request per item and assigned dimension, our own
rubric, 1-5) and a reward model (``benchmark.reward_model=PATH``: a sequence-classification model
with one output, fed profile, context, answer and dimension the way the published CharacterRM
reads them). Both are reported per dimension and per group on a 0-1 scale: a 1-5 judge score s
counts as (s-1)/4, the reward model's output x (CharacterRM's own score is 1+4x) as x clipped to 0-1.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from rolecraft.errors import ConfigError, DataError

log = logging.getLogger("rolecraft")

NAME = "charactereval"
FILES = ("test_data.jsonl", "character_profiles.json", "id2metric.jsonl")
WHERE_TO_GET = "the data/ folder of https://github.com/morecry/CharacterEval"


@dataclass(frozen=True)
class Dimension:
    name: str  # as in id2metric (Fluency, Communication_skills ...)
    zh: str
    group: str
    rubric: str  # what 5 and 1 look like, in our own words


# (group key, the paper's name for it)
GROUPS = {
    "conversation": "conversational ability",
    "character_consistency": "character consistency",
    "attractiveness": "role-playing attractiveness",
}

DIMENSIONS: dict[str, Dimension] = {d.name: d for d in (
    Dimension("Fluency", "对话流利度", "conversation",
              "Is the reply well-formed, readable Chinese? 5: natural and grammatical throughout; "
              "3: understandable with some awkward or broken phrasing; 1: garbled, repetitive or unreadable."),
    Dimension("Coherence", "对话连贯性", "conversation",
              "Does the reply follow from the scene and answer what was just said? 5: a fitting, on-topic "
              "continuation; 3: loosely related; 1: ignores the conversation or changes the subject."),
    Dimension("Consistency", "对话一致性", "conversation",
              "Does the reply agree with what the character has already said and done in this scene? "
              "5: no contradiction with earlier turns; 3: a minor tension; 1: contradicts earlier turns."),
    Dimension("Exposure", "知识曝光度", "character_consistency",
              "How much knowledge tied to this character (background, relations, events of the work) does "
              "the reply bring in? 5: informative and specific to the character; 3: some; 1: none, generic."),
    Dimension("Accuracy", "知识准确率", "character_consistency",
              "Is the character knowledge in the reply correct with respect to the profile and the work? "
              "5: everything stated is right; 3: partly wrong or vague; 1: mostly wrong."),
    Dimension("Hallucination", "知识幻觉性", "character_consistency",
              "Does the reply avoid knowledge the character could not have (things outside their world or "
              "time, invented facts)? 5: nothing out of character; 3: a slip; 1: clearly out-of-world knowledge."),
    Dimension("Behavior", "行为一致性", "character_consistency",
              "Do the actions, expressions and stage directions (in parentheses) fit the character's "
              "personality and situation? 5: fully in character; 3: neutral or partly off; 1: out of character."),
    Dimension("Utterance", "言语一致性", "character_consistency",
              "Does the way of speaking (tone, wording, habits of speech) match the character? 5: unmistakably "
              "this character's voice; 3: plausible but generic; 1: a voice the character would never use."),
    Dimension("Humanlikeness", "类人程度", "attractiveness",
              "Does the reply read like a person in the story rather than an AI assistant? 5: fully human; "
              "3: somewhat stiff or formulaic; 1: assistant-like (disclaimers, offers of help, lists)."),
    Dimension("Communication_skills", "交流技巧", "attractiveness",
              "How skilfully does the character handle the other person (tact, wit, reading the situation)? "
              "5: adroit and socially apt; 3: adequate; 1: clumsy or socially inept."),
    Dimension("Diversity", "表现多样性", "attractiveness",
              "Is the expression vivid and varied (word choice, description, emotion) rather than bland? "
              "5: rich and varied; 3: ordinary; 1: flat, templated or repetitive."),
    Dimension("Empathy", "共情度", "attractiveness",
              "Does the reply notice and respond to the other person's feelings? 5: understanding and caring "
              "in a way that fits the character; 3: some awareness; 1: ignores or misreads their feelings."),
)}


def key_of(name: str) -> str:
    """The metric-key spelling of a dimension (``Communication_skills`` -> ``communication_skills``)."""
    return name.lower()


# ---- loading ---------------------------------------------------------------------------------

# a speaker name is short and has no stage direction in it; longer text before a colon is narration
_SPEAKER = re.compile(r"^([^（(：:\n]{1,20})：(.*)$", re.S)


def parse_context(context: str, role: str) -> tuple[list[dict], int]:
    """(turns, narration lines): the role's lines as assistant turns, the rest as user turns
    ``name：utterance``, narration (lines without a speaker) on the user side as is; consecutive
    lines of one side merged with newlines."""
    turns: list[dict] = []
    narration = 0
    for raw in context.split("\n"):
        line = raw.strip()
        if not line:
            continue
        m = _SPEAKER.match(line)
        if m is None:
            narration += 1
            side, text = "user", line
        else:
            speaker, said = m.group(1).strip(), m.group(2).strip()
            side, text = ("assistant", said) if speaker == role else ("user", f"{speaker}：{said}")
        if turns and turns[-1]["role"] == side:
            turns[-1]["content"] += "\n" + text
        else:
            turns.append({"role": side, "content": text})
    return turns, narration


def _profile_text(value, where: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "、".join(v.strip() for v in value)
    raise DataError(f"{where}: profile values must be text (or a list of texts), got {type(value).__name__}; "
                    "fix the profile")


def _files(cfg) -> list[Path]:
    if not cfg.root:
        raise ConfigError(f"benchmark=charactereval needs benchmark.root: the folder holding {', '.join(FILES)} "
                          f"({WHERE_TO_GET})")
    root = Path(str(cfg.root)).expanduser()
    if root.is_file():
        root = root.parent
    if not root.is_dir():
        raise ConfigError(f"benchmark.root={cfg.root!r}: no such directory (it should hold {', '.join(FILES)})")
    paths = [root / f for f in FILES]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"benchmark.root={cfg.root!r}: missing {p.name} (the CharacterEval folder holds "
                              f"{', '.join(FILES)}; get them from {WHERE_TO_GET})")
    return paths


def _read_profiles(path: Path) -> tuple[dict[str, dict], dict[str, str]]:
    from rolecraft.data.prompts import render_profile
    from rolecraft.fileio import read_json

    raw = read_json(path)
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected one JSON object from character name to profile object; "
                        "is it CharacterEval's character_profiles.json?")
    texts = {}
    for name, prof in raw.items():
        where = f"{path}: character {name!r}"
        if not isinstance(prof, dict):
            raise DataError(f"{where}: the profile must be an object of fields, got {type(prof).__name__}")
        texts[name] = render_profile({str(k): _profile_text(v, f"{where}, field {k!r}") for k, v in prof.items()})
    return raw, texts


def _read_metrics(path: Path) -> dict[str, list[tuple[str, str]]]:
    from rolecraft.fileio import read_json

    raw = read_json(path)
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected one JSON object from item id to [[metric, 中文名], ...]; "
                        "is it CharacterEval's id2metric.jsonl?")
    out = {}
    for key, pairs in raw.items():
        where = f"{path}: item id {key}"
        if not isinstance(pairs, list) or not pairs:
            raise DataError(f"{where}: expected a non-empty list of [metric, 中文名] pairs")
        dims = []
        for p in pairs:
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
                raise DataError(f"{where}: each entry must be a [metric, 中文名] pair of strings, got {p!r}")
            if p[0] not in DIMENSIONS:
                raise DataError(f"{where}: unknown metric {p[0]!r}; known: {', '.join(DIMENSIONS)}")
            if p[0] not in [d for d, _ in dims]:
                dims.append((p[0], p[1]))
        out[str(key)] = dims
    return out


def load(cfg):
    """The benchmark: one dialogue item per scene that id2metric scores (the rest are skipped and counted)."""
    from rolecraft.evaluation.benchmarks import Benchmark, EvalItem
    from rolecraft.fileio import read_json

    data_path, prof_path, metric_path = _files(cfg)
    raw_profiles, profiles = _read_profiles(prof_path)
    metrics = _read_metrics(metric_path)
    data = read_json(data_path)
    if not isinstance(data, list):
        raise DataError(f"{data_path}: expected a JSON array of items (id, role, novel_name, context); "
                        "is it CharacterEval's test_data.jsonl?")
    items, seen = [], {}
    no_dims = 0
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataError(f"{data_path}: item {n} is not an object")
        iid = row.get("id")
        if isinstance(iid, bool) or not isinstance(iid, (int, str)) or not str(iid).strip():
            raise DataError(f"{data_path}: item {n} has no 'id' (an integer or a string)")
        key = str(iid).strip()
        where = f"{data_path}: item id {key}"
        if key in seen:
            raise DataError(f"{where}: duplicate id (first as item {seen[key]}); ids must be unique")
        seen[key] = n
        role, context, novel = row.get("role"), row.get("context"), row.get("novel_name")
        if not isinstance(role, str) or not role.strip():
            raise DataError(f"{where}: 'role' must be the name of the character who speaks next")
        role = role.strip()
        if not isinstance(context, str) or not context.strip():
            raise DataError(f"{where}: 'context' must be the non-empty scene before the reply")
        if novel is not None and not isinstance(novel, str):
            raise DataError(f"{where}: 'novel_name' must be a string")
        if role not in profiles:
            raise DataError(f"{where}: role {role!r} has no profile in {prof_path.name}; add it there or remove "
                            "the item")
        if key not in metrics:
            no_dims += 1
            continue
        turns, lines = parse_context(context, role)
        items.append(EvalItem(key, "dialogue", role, context.strip(), [], category=novel, messages=turns,
                              meta={"whole_scene": True, "dimensions": metrics[key], "profile": raw_profiles[role],
                                    "narration_lines": lines}))
    if no_dims:
        log.warning("charactereval: %d of %d items have no dimensions in %s (skipped)", no_dims, len(data),
                    metric_path.name)
    return Benchmark(NAME, items, profiles, skipped={"no_dimensions": no_dims} if no_dims else {},
                     files=[data_path, prof_path, metric_path])


# ---- scores ------------------------------------------------------------------------------------


def dimension_counts(items) -> dict:
    """``charactereval/n/<dim>``: how many evaluated items are scored on each dimension; how many
    context lines had no speaker (kept as narration); how many scenes end with the role's own line
    (the model then speaks twice in a row)."""
    m = {f"{NAME}/narration_lines": sum(it.meta.get("narration_lines", 0) for it in items),
         f"{NAME}/context_ends_with_role": sum(1 for it in items if it.messages and
                                               it.messages[-1]["role"] == "assistant")}
    counts: dict[str, int] = {}
    for it in items:
        for d, _ in it.meta.get("dimensions", []):
            counts[d] = counts.get(d, 0) + 1
    m.update({f"{NAME}/n/{key_of(d)}": counts[d] for d in DIMENSIONS if d in counts})
    return m


def summarise(scores: dict[str, list[float]], prefix: str) -> dict:
    """Per-dimension means (0-1) and counts, each group's mean of its dimension means, and ``avg``
    (the mean of all dimension means). A dimension with no valid score has no key."""
    m: dict = {}
    means = {d: fmean(v) for d, v in scores.items() if v}
    for d in DIMENSIONS:
        if d in means:
            m[f"{prefix}/{key_of(d)}"] = means[d]
            m[f"{prefix}/n/{key_of(d)}"] = len(scores[d])
    for g in GROUPS:
        vals = [means[d] for d in DIMENSIONS if DIMENSIONS[d].group == g and d in means]
        if vals:
            m[f"{prefix}/group/{g}"] = fmean(vals)
    if means:
        m[f"{prefix}/avg"] = fmean(means.values())
    return m


def to_unit(score_1_5: float) -> float:
    return (score_1_5 - 1) / 4


# ---- the judge -----------------------------------------------------------------------------------

JUDGE_SYSTEM = (
    "You are a strict, impartial judge of Chinese role-play dialogue. You read a character's profile, "
    "a scene, and the reply the character gives next, and you score that reply on ONE dimension on a "
    "1-5 scale (1 = very poor, 3 = acceptable, 5 = excellent). Judge only the named dimension; length "
    "alone is not quality.")


def judge_prompt(item, profile: str | None, answer: str, dim: str) -> list[dict]:
    d = DIMENSIONS[dim]
    user = "\n\n".join([
        f"Character: {item.character}" + (f" (from {item.category})" if item.category else ""),
        f"Profile:\n{profile or '(none)'}",
        f"Scene so far:\n{item.question}",
        f"The character's reply to score:\n{answer if answer.strip() else '(empty reply)'}",
        f"Dimension: {d.name} ({d.zh})\n{d.rubric}",
        'Reply with JSON only: {"score": <1-5>, "reason": "<one sentence>"}',
    ])
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_judge(text: str) -> dict:
    from rolecraft.api.reask import Invalid
    from rolecraft.evaluation.judge import _json_object

    v = _json_object(text).get("score")
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5:
        raise Invalid(f'"score" must be an integer from 1 to 5, got {v!r}')
    return {"score": v}


def run_judge(cfg, bench, answers: dict[str, str], model_name: str, endpoint):
    """Verdicts (one per item, dimension and repeat) and flat metrics for one model's answers."""
    from rolecraft.evaluation.judge import Verdict, ask, pick_items

    j = cfg.judge
    if j.mode != "pointwise":
        raise ConfigError(f"judge={j.mode} is not defined for benchmark=charactereval: use judge=pointwise "
                          "(each reply scored 1-5 on the item's dimensions)")
    if j.compare:
        raise ConfigError("judge.compare is not supported with benchmark=charactereval yet: judge each model's "
                          "answers in its own run")
    items, skipped = pick_items(bench.items, {model_name: answers}, j.max_items, cfg.seed)
    verdicts, convs = [], []
    for it in items:
        profile = bench.profiles.get(it.character or "")
        for rep in range(j.repeats):
            for dim, _ in it.meta["dimensions"]:
                verdicts.append(Verdict(it.key, rep, [model_name], dimension=dim))
                convs.append(judge_prompt(it, profile, answers[it.key], dim))
    ask(verdicts, convs, endpoint, j, check=parse_judge)
    ok = [v for v in verdicts if v.error is None]
    m: dict = {"judge/verdicts": len(verdicts), "judge/failures": len(verdicts) - len(ok),
               "judge/reasked": sum(1 for v in verdicts if v.attempts > 1), "judge/skipped_items": skipped,
               f"{NAME}/judge/items": len(items)}
    scores: dict[str, list[float]] = {}
    for v in ok:
        scores.setdefault(v.dimension, []).append(to_unit(v.scores["score"]))
    m.update(summarise(scores, f"{NAME}/judge"))
    return verdicts, m


def judge_per_row(verdicts) -> dict[str, dict[str, float]]:
    """{item key: {dimension: mean 1-5 judge score over repeats}} for samples.jsonl."""
    acc: dict[str, dict[str, list[int]]] = {}
    for v in verdicts:
        if v.error is None:
            acc.setdefault(v.key, {}).setdefault(v.dimension, []).append(v.scores["score"])
    return {k: {d: fmean(s) for d, s in dims.items()} for k, dims in acc.items()}


# ---- the reward model ------------------------------------------------------------------------------


def reward_input(profile: dict, context: str, answer: str, dim_zh: str) -> str:
    """The text a CharacterEval reward model reads, laid out as the published CharacterRM expects:
    tagged sections for the profile (the profile object as Python prints it), the scene, the reply
    and the dimension's Chinese name."""
    return (f"<RoleInfo>\n\n{profile}\n\n<Context>\n\n{context}\n\n<Response>\n\n{answer}"
            f"\n\n<Dimension>\n\n{dim_zh}")


def reward_scores(cfg, bench, answers: dict[str, str]) -> tuple[dict, dict[str, dict[str, float]]]:
    """Flat metrics and {item key: {dimension: 1-5 score}} from ``benchmark.reward_model``.

    One sequence at a time (no padding: sequence-classification heads pick the last non-pad token,
    and the end-of-text token this input ends with is often the pad token too)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rolecraft.inference.device import pick_device

    b = cfg.benchmark
    path = Path(str(b.reward_model)).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"benchmark.reward_model={b.reward_model!r}: not a model directory (no config.json); "
                          "give a saved AutoModelForSequenceClassification, e.g. CharacterRM")
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype="auto")
    if model.config.num_labels != 1:
        raise ConfigError(f"benchmark.reward_model={b.reward_model!r}: has {model.config.num_labels} outputs; a "
                          "reward model scores with exactly one (num_labels=1)")
    device = pick_device(cfg.device)
    model.to(device).eval()
    scores: dict[str, list[float]] = {}
    per_row: dict[str, dict[str, float]] = {}
    clipped = truncated = 0
    with torch.inference_mode():
        for it in bench.items:
            for dim, zh in it.meta["dimensions"]:
                ids = tok(reward_input(it.meta["profile"], it.question, answers[it.key], zh),
                          add_special_tokens=False)["input_ids"]
                if tok.eos_token_id is not None:
                    ids = ids + [tok.eos_token_id]
                if len(ids) > b.reward_max_length:
                    ids, truncated = ids[-b.reward_max_length:], truncated + 1
                x = float(model(input_ids=torch.tensor([ids], device=device)).logits[0, 0].float())
                unit = min(1.0, max(0.0, x))
                clipped += int(unit != x)
                scores.setdefault(dim, []).append(unit)
                per_row.setdefault(it.key, {})[dim] = 1 + 4 * x
    m = summarise(scores, f"{NAME}/rm")
    m.update({f"{NAME}/rm/clipped": clipped, f"{NAME}/rm/truncated": truncated,
              f"{NAME}/rm/model": str(b.reward_model)})
    return m, per_row


def score(cfg, bench, answers: dict[str, str], rows: list[dict]) -> dict:
    """Dimension counts, and the reward model's scores where ``benchmark.reward_model`` is set; each
    row gets a ``charactereval`` field (its dimensions, later its judge and reward-model scores)."""
    m = dimension_counts(bench.items)
    by_key = {it.key: it for it in bench.items}
    for row in rows:
        row[NAME] = {"dimensions": [d for d, _ in by_key[row["key"]].meta["dimensions"]]}
    if cfg.benchmark.reward_model:
        rm, per_row = reward_scores(cfg, bench, answers)
        m.update(rm)
        for row in rows:
            row[NAME]["rm"] = per_row.get(row["key"], {})
    return m


def add_judge_to_rows(rows: list[dict], verdicts) -> None:
    per = judge_per_row(verdicts)
    for row in rows:
        if NAME in row:
            row[NAME]["judge"] = per.get(row["key"], {})
