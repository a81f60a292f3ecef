"""An LLM judge: ranks several models' answers to one question (the paper's Table 3), or scores
each answer 1-5 (pointwise).

Judges prefer some positions, so candidates are shuffled per question and repeat (seeded) and the
share of wins per displayed position is reported. Verdicts are parsed strictly: a ranking must
name every candidate exactly once. A malformed verdict is re-asked, telling the judge what was
wrong; after ``max_attempts`` it is recorded as a failure in judge.jsonl and counted, never
dropped silently.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from statistics import fmean

from rolecraft.api.reask import Invalid
from rolecraft.errors import ConfigError

MODES = ("none", "rank", "pointwise")

RANK_SYSTEM = (
    "You are a strict, impartial judge of role-playing dialogue. You compare answers written in the "
    "voice of a character and rank them. Judge two things together: (a) how distinctive the speaking "
    "style is and how faithful it is to the character's profile; (b) how rich and accurate the "
    "character-related knowledge and memories in the answer are. Length alone is not quality. "
    "Do not favour an answer because of its position or label.")
POINT_SYSTEM = (
    "You are a strict, impartial judge of role-playing dialogue. You score one answer written in the "
    "voice of a character, on two 1-5 scales: style (how distinctive the speaking style is and how "
    "faithful to the character's profile) and knowledge (how rich and accurate the character-related "
    "knowledge and memories are). 1 = absent or wrong, 3 = adequate, 5 = excellent.")


@dataclass
class Verdict:
    key: str
    repeat: int
    order: list[str]  # model names in the order shown to the judge
    attempts: int = 0
    ranking: list[str] | None = None  # rank mode: model names, best first
    scores: dict | None = None  # pointwise mode: {"style": int, "knowledge": int}
    raw: str | None = None
    error: str | None = None
    history: list[dict] = field(default_factory=list)
    # the dimension scored, where a benchmark scores several one request at a time (CharacterEval)
    dimension: str | None = None


def _context(item, profile: str | None) -> str:
    parts = [f"Character: {item.character or '(none: a general assistant answer)'}"]
    if profile:
        parts.append(f"Profile:\n{profile}")
    parts.append(f"Question to the character:\n{item.question}")
    if item.references:
        parts.append(f"A reference answer (for knowledge, not to be copied):\n{item.references[0]}")
    return "\n\n".join(parts)


def rank_prompt(item, profile: str | None, answers: list[str]) -> list[dict]:
    n = len(answers)
    cands = "\n\n".join(f"[{i}]\n{a if a.strip() else '(empty answer)'}" for i, a in enumerate(answers, 1))
    user = (f"{_context(item, profile)}\n\nCandidate answers:\n\n{cands}\n\n"
            f"Rank all {n} candidates from best to worst. Reply with JSON only, in this form: "
            f'{{"ranking": [{", ".join(str(i) for i in range(1, n + 1))}], "reason": "<one sentence>"}} '
            f"where ranking lists every candidate number from 1 to {n} exactly once, best first.")
    return [{"role": "system", "content": RANK_SYSTEM}, {"role": "user", "content": user}]


def point_prompt(item, profile: str | None, answer: str) -> list[dict]:
    user = (f"{_context(item, profile)}\n\nAnswer to score:\n{answer if answer.strip() else '(empty answer)'}\n\n"
            'Reply with JSON only: {"style": <1-5>, "knowledge": <1-5>, "reason": "<one sentence>"}')
    return [{"role": "system", "content": POINT_SYSTEM}, {"role": "user", "content": user}]


def _json_object(text: str) -> dict:
    m = re.search(r"\{.*\}", text or "", re.S)
    if not m:
        raise Invalid("no JSON object in the reply")
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError as e:
        raise Invalid(f"invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise Invalid("the JSON is not an object")
    return obj


def parse_ranking(text: str, n: int) -> list[int]:
    """0-based candidate indices, best first. Raises Invalid (a ValueError) saying what is wrong."""
    obj = _json_object(text)
    r = obj.get("ranking")
    if not isinstance(r, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in r):
        raise Invalid('"ranking" must be a list of candidate numbers')
    bad = [x for x in r if not 1 <= x <= n]
    if bad:
        raise Invalid(f"ranking names candidate(s) {bad} that do not exist (valid: 1..{n})")
    if len(r) != n or len(set(r)) != n:
        raise Invalid(f"ranking must list each of the {n} candidates exactly once, got {r}")
    return [x - 1 for x in r]


def parse_scores(text: str) -> dict:
    obj = _json_object(text)
    out = {}
    for k in ("style", "knowledge"):
        v = obj.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5:
            raise Invalid(f'"{k}" must be an integer from 1 to 5, got {v!r}')
        out[k] = v
    return out


def pick_items(items, candidates: dict[str, dict[str, str]], max_items: int | None, seed: int):
    """Items every candidate answered (sampled with the seed), and how many were left out."""
    joined = [it for it in items if all(it.key in preds for preds in candidates.values())]
    skipped = len(items) - len(joined)
    if max_items is not None and len(joined) > max_items:
        joined = sorted(random.Random(seed).sample(joined, max_items), key=lambda it: it.key)
    return joined, skipped


def run_judge(cfg, bench, candidates: dict[str, dict[str, str]], endpoint) -> tuple[list[Verdict], dict]:
    """Verdicts and flat metrics for the candidate models' answers ({model: {item key: answer}})."""
    j = cfg.judge
    if j.mode not in MODES:
        raise ConfigError(f"judge.mode={j.mode!r}: use one of {', '.join(MODES)}")
    if j.mode == "rank" and len(candidates) < 2:
        raise ConfigError("judge=rank needs at least two models: add judge.compare=[EVAL_RUN_DIR_OR_FILE,...]")
    if j.repeats < 1 or j.max_attempts < 1:
        raise ConfigError(f"judge.repeats={j.repeats} and judge.max_attempts={j.max_attempts} must be at least 1")
    items, skipped = pick_items(bench.items, candidates, j.max_items, cfg.seed)
    names = sorted(candidates)
    verdicts: list[Verdict] = []
    convs: list[list[dict]] = []
    for it in items:
        profile = bench.profiles.get(it.character or "")
        for rep in range(j.repeats):
            order = list(names)
            random.Random(f"{cfg.seed}:{it.key}:{rep}").shuffle(order)
            if j.mode == "rank":
                verdicts.append(Verdict(it.key, rep, order))
                convs.append(rank_prompt(it, profile, [candidates[m][it.key] for m in order]))
            else:
                for m in order:
                    verdicts.append(Verdict(it.key, rep, [m]))
                    convs.append(point_prompt(it, profile, candidates[m][it.key]))
    ask(verdicts, convs, endpoint, j)
    return verdicts, judge_metrics(verdicts, j.mode, names, skipped)


def reask_feedback(problem: str) -> str:
    return f"That reply is not valid: {problem}. Reply again with the JSON only."


def ask(verdicts: list[Verdict], convs: list[list[dict]], endpoint, j, check=None) -> None:
    """Each verdict through the shared re-ask loop (:func:`rolecraft.api.reask.ask_until_valid`).
    ``check`` parses a pointwise verdict (default: style and knowledge scores).
    Try ``n`` is cached under the tag ``judge-attempt-n``, so a malformed cached verdict is never
    served again and earlier runs' cached verdicts still match."""
    from rolecraft.api.client import ApiError
    from rolecraft.api.reask import ask_until_valid

    params = endpoint.chat_params(temperature=j.temperature, max_tokens=j.max_tokens)

    async def one(session, i: int):
        v = verdicts[i]

        async def ask_once(conv, attempt):
            res = await session.chat(j.model, conv, params, tag=f"judge-attempt-{attempt}")
            if res.error:  # the endpoint itself failed after its retries: no point re-asking
                raise ApiError(res.error)
            return res.content

        if len(v.order) > 1:
            valid = lambda text: [v.order[k] for k in parse_ranking(text, len(v.order))]  # noqa: E731
        else:
            valid = check or parse_scores
        res = await ask_until_valid(convs[i], ask_once, valid, j.max_attempts, reask_feedback)
        v.attempts, v.history = res.attempts, res.history
        v.raw = res.last_answer if res.last_answer is not None else v.raw
        if res.endpoint_error is not None:
            v.error = res.endpoint_error
        elif res.invalid is not None:
            v.error = f"malformed verdict: {res.invalid}"
        elif len(v.order) > 1:
            v.ranking, v.error = res.value, None
        else:
            v.scores, v.error = res.value, None

    endpoint.run_many(one, list(range(len(verdicts))), desc="judge")


_ask = ask  # the older name


def judge_metrics(verdicts: list[Verdict], mode: str, names: list[str], skipped: int) -> dict:
    ok = [v for v in verdicts if v.error is None]
    m: dict = {"judge/verdicts": len(verdicts), "judge/failures": len(verdicts) - len(ok),
               "judge/reasked": sum(1 for v in verdicts if v.attempts > 1), "judge/skipped_items": skipped}
    if mode == "rank":
        for name in names:
            ranks = [v.ranking.index(name) + 1 for v in ok]
            m[f"judge/avg_rank/{name}"] = fmean(ranks) if ranks else None
        n = len(names)
        if ok:
            top_pos = [v.order.index(v.ranking[0]) for v in ok]
            shares = [top_pos.count(p) / len(ok) for p in range(n)]
            for p, s in enumerate(shares, 1):
                m[f"judge/position_bias/top_share/{p}"] = s
            # 0 = the judge's favourite is spread evenly over positions (1/n each)
            m["judge/position_bias/max_deviation"] = max(abs(s - 1 / n) for s in shares)
    else:
        for name in names:
            mine = [v.scores for v in ok if v.order[0] == name]
            for k in ("style", "knowledge"):
                m[f"judge/{k}/{name}"] = fmean(s[k] for s in mine) if mine else None
    return m
