"""Dataset statistics: the quantities of the paper's Table 1 and the emotion distribution of
Figure 4, computed from a canonical :class:`~rolecraft.data.schema.RoleInstruct`.

Definitions (all lengths in characters, i.e. Python ``len`` of the text):

* ``avg_profile_length``: length of the profile rendered as one text,
  ``"；".join(f"{key}：{value}")`` (:func:`profile_text`), averaged over characters;
  this is the profile's original ``key：value`` line up to separators.
* ``instructions`` = ``specific_instructions + general_instructions + raw_instructions +
  dialogue_instructions``,
  one per sample; ``general_instructions`` counts (character, instruction) pairs, so a
  general instruction answered by 14 characters counts 14 times (the paper's 1,479 × 20);
  ``unique_general_instructions`` counts distinct texts.
* ``responses``: references summed over all samples (``specific_responses``,
  ``general_responses``, ``raw_responses``, ``dialogue_responses`` per kind).
* ``dialogue_history_turns``: turns of the dialogue samples' histories (samples.jsonl only: the
  script windows of ``data.dialogue=on`` are built per run and counted by ``dialogues`` /
  ``utterances``).
* ``avg_instruction_length``: over samples; ``avg_response_length``: over references.
* ``dialogues``: distinct (character, dialogue) pairs of the script.
* ``emotions``: label -> number of script utterances, all ten labels (0 if absent) plus
  ``unlabeled``; ``emotion_shares``: label -> fraction of the *labeled* utterances.
* ``splits``: split -> samples, ``splits_by_kind``: kind -> split -> samples.
"""

from __future__ import annotations

from collections import Counter

from rolecraft.data.schema import EMOTIONS, KINDS, SPLITS, RoleInstruct


def profile_text(profile: dict[str, str]) -> str:
    from rolecraft.data.prompts import render_profile

    return render_profile(profile, sep="；")


def _mean(total: int, n: int) -> float:
    return round(total / n, 1) if n else 0.0


def dataset_stats(ds: RoleInstruct) -> dict:
    kinds = Counter(s.kind for s in ds.samples)
    responses = Counter()
    for s in ds.samples:
        responses[s.kind] += len(s.references)
    n_refs = sum(responses.values())
    splits = Counter(s.split for s in ds.samples)
    by_kind = {k: {sp: 0 for sp in SPLITS} for k in KINDS}
    for s in ds.samples:
        by_kind[s.kind][s.split] += 1
    emotions = {label: 0 for label in EMOTIONS}
    unlabeled = 0
    for u in ds.script:
        if u.emotion is None:
            unlabeled += 1
        else:
            emotions[u.emotion] += 1
    labeled = sum(emotions.values())
    per_character = {}
    for name in ds.characters:
        per_character[name] = {"utterances": 0, **{k: 0 for k in KINDS}}
    for u in ds.script:
        per_character[u.character]["utterances"] += 1
    for s in ds.samples:
        per_character[s.character][s.kind] += 1
    return {
        "characters": len(ds.characters),
        "utterances": len(ds.script),
        "dialogues": len({(u.character, u.dialogue) for u in ds.script}),
        "avg_profile_length": _mean(sum(len(profile_text(c.profile)) for c in ds.characters.values()), len(ds.characters)),
        "specific_instructions": kinds["specific"],
        "general_instructions": kinds["general"],
        "raw_instructions": kinds["raw"],
        "dialogue_instructions": kinds["dialogue"],
        # turns of the dialogue samples' histories (the instruction and answer not counted)
        "dialogue_history_turns": sum(len(s.messages or []) for s in ds.samples if s.kind == "dialogue"),
        "instructions": len(ds.samples),
        "unique_general_instructions": len({s.instruction for s in ds.samples if s.kind == "general"}),
        "responses": n_refs,
        "specific_responses": responses["specific"],
        "general_responses": responses["general"],
        "raw_responses": responses["raw"],
        "dialogue_responses": responses["dialogue"],
        "avg_instruction_length": _mean(sum(len(s.instruction) for s in ds.samples), len(ds.samples)),
        "avg_response_length": _mean(sum(len(r) for s in ds.samples for r in s.references), n_refs),
        "splits": {sp: splits[sp] for sp in SPLITS},
        "splits_by_kind": by_kind,
        "emotions": {**emotions, "unlabeled": unlabeled},
        "emotion_shares": {label: (round(n / labeled, 4) if labeled else 0.0) for label, n in emotions.items()},
        "per_character": per_character,
    }


_ROWS = (
    ("Characters", "characters"),
    ("Dialogues", "dialogues"),
    ("Utterances", "utterances"),
    ("Avg. profile length (chars)", "avg_profile_length"),
    ("Specific instructions", "specific_instructions"),
    ("General instructions", "general_instructions"),
    ("  distinct general instructions", "unique_general_instructions"),
    ("Raw instructions", "raw_instructions"),
    ("Dialogue instructions", "dialogue_instructions"),
    ("  history turns", "dialogue_history_turns"),
    ("Instructions (all)", "instructions"),
    ("Specific responses", "specific_responses"),
    ("General responses", "general_responses"),
    ("Raw responses", "raw_responses"),
    ("Dialogue responses", "dialogue_responses"),
    ("Responses (all)", "responses"),
    ("Avg. instruction length (chars)", "avg_instruction_length"),
    ("Avg. response length (chars)", "avg_response_length"),
)


def _fmt(v) -> str:
    return f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"


def format_stats(stats: dict, width: int = 40) -> str:
    """A human-readable table (Table 1) and a text bar chart of emotions (Figure 4)."""
    lines = ["RoleInstruct statistics", ""]
    lw = max(len(label) for label, _ in _ROWS)
    for label, key in _ROWS:
        if key in stats:
            lines.append(f"  {label:<{lw}}  {_fmt(stats[key]):>12}")
    sp = stats.get("splits", {})
    if sp:
        lines.append(f"  {'Splits (samples)':<{lw}}  " + "  ".join(f"{k} {_fmt(v)}" for k, v in sp.items()))
    emotions = stats.get("emotions", {})
    shares = stats.get("emotion_shares", {})
    labeled = sum(v for k, v in emotions.items() if k != "unlabeled")
    lines += ["", f"Emotion distribution ({_fmt(labeled)} labeled utterances, {_fmt(emotions.get('unlabeled', 0))} unlabeled)"]
    top = max(shares.values(), default=0.0) or 1.0
    for label, share in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0])):
        bar = "█" * round(width * share / top)
        lines.append(f"  {label:<12} {share * 100:5.1f}%  {bar} {_fmt(emotions.get(label, 0))}")
    return "\n".join(lines)


def load_checked(root: str) -> RoleInstruct:
    """The dataset at ``root``, loaded and checked the same way by ``validate`` and ``stats``
    (so both give the same exit code for the same file): also a dataset with no samples is an
    error, unless its meta.json declares ``script_only`` (a CPED import, for ``data agreement``)."""
    from rolecraft.data import resolve_data_root, schema
    from rolecraft.errors import DataError

    ds = schema.load(resolve_data_root(root))
    if not ds.samples and not ds.meta.get("script_only"):
        raise DataError(f"{ds.root / 'samples.jsonl'}: no samples, so nothing to train or evaluate on (a truncated "
                        f"or emptied file?); restore it, or set \"script_only\": true in meta.json for a script-only "
                        f"dataset")
    return ds


def validate_command(root: str) -> int:
    """``rolecraft data validate``: 0 and a one-line summary; the first defect (file:line) raises
    DataError, which the CLI prints as one line with exit 2, as for every bad input."""
    ds = load_checked(root)
    kinds = Counter(s.kind for s in ds.samples)
    labeled = sum(1 for u in ds.script if u.emotion is not None)
    print(f"OK: {len(ds.characters)} characters, {len(ds.script)} utterances ({labeled} with emotion), "
          f"{len(ds.samples)} samples (specific {kinds['specific']}, general {kinds['general']}, raw {kinds['raw']}, "
          f"dialogue {kinds['dialogue']}), "
          f"{sum(len(s.references) for s in ds.samples)} references")
    return 0


def stats_command(root: str, as_json: bool = False) -> int:
    """``rolecraft data stats``: the table, or the same numbers as JSON."""
    import json

    stats = dataset_stats(load_checked(root))
    print(json.dumps(stats, ensure_ascii=False, indent=2) if as_json else format_stats(stats))
    return 0
