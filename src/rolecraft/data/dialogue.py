"""Multi-turn dialogue samples cut from a dataset's annotated script (``data.dialogue=on``).

A scene is the rows of ``script.jsonl`` with the same (character, dialogue), ordered by ``turn``.
The character (its lines, under any of its names: see ``prompts.character_names``) is the
assistant; every other speaker is the user side and keeps its name. Consecutive lines of one side
merge into one turn, so the chat alternates as chat templates expect. Each window ends with a
character turn (the answer, the sample's reference); the user turn before it is the instruction,
and up to ``window - 2`` earlier turns are the history (a history never starts with the character).

Emotion labels: the windows are built in memory for each run, never written to samples.jsonl; the
labels stay in script.jsonl's ``emotion`` field, and ``emotions=on`` shows them as the "（情绪）"
prefix of the OTHER speakers' lines (as ``prompts.format_exemplar`` does), ``emotions=off`` hides
them. The character's own lines never carry a label: they are what the model learns to say
(``data.dialogue_loss=all`` trains on them), and the answer it is scored on has none either.

Split by scene: every window of a scene gets ``schema.assign_split`` of (character, dialogue), so no
scene feeds both training and testing. A demo-sized script has only a few scenes per character, so
the val/test shares are larger than the per-sample defaults (``data.dialogue_val`` / ``_test``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from rolecraft.data.prompts import character_names, emotion_prefix
from rolecraft.data.schema import RoleInstruct, Sample, Utterance, assign_split, stable_id
from rolecraft.errors import ConfigError


@dataclass
class WindowOptions:
    window: int = 8  # turns per window, the answer included
    stride: int = 1  # character turns between the answers of consecutive windows
    val: float = 0.1  # share of scenes in val / test
    test: float = 0.2

    def check(self) -> None:
        if self.window < 2:
            raise ConfigError(f"data.dialogue_window={self.window}: a window needs at least 2 turns "
                              "(the instruction and the answer); e.g. 8")
        if self.stride < 1:
            raise ConfigError(f"data.dialogue_stride={self.stride}: must be at least 1 (1 = every character turn "
                              "answers one window)")
        for key, v in (("dialogue_val", self.val), ("dialogue_test", self.test)):
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"data.{key}={v}: a share of scenes, between 0 and 1")
        if self.val + self.test >= 1.0:
            raise ConfigError(f"data.dialogue_test={self.test}: with data.dialogue_val={self.val} it leaves no scene "
                              "to train on; keep their sum below 1")


@dataclass
class Turn:
    role: str  # user | assistant
    lines: list[Utterance]

    def content(self, emotions: bool, with_names: bool) -> str:
        """The lines of the turn, one per line; user-side lines carry their label (emotions on) and,
        where the turn mixes speakers, their speaker's name."""
        out = []
        for u in self.lines:
            label = emotion_prefix(u.emotion, emotions) if self.role == "user" else ""
            out.append((f"{u.speaker}：" if with_names else "") + label + u.text)
        return "\n".join(out)

    def message(self, emotions: bool) -> dict:
        speakers = {u.speaker for u in self.lines}
        if self.role == "assistant":
            return {"role": "assistant", "content": self.content(False, False)}
        if len(speakers) == 1:  # one speaker: the name goes into the turn's "name"
            return {"role": "user", "content": self.content(emotions, False), "name": self.lines[0].speaker}
        return {"role": "user", "content": self.content(emotions, True)}


def scene_turns(lines: list[Utterance], names: set[str]) -> list[Turn]:
    """A scene's lines (ordered by turn) as alternating turns: consecutive lines of one side merged."""
    turns: list[Turn] = []
    for is_char, group in groupby(sorted(lines, key=lambda u: u.turn), key=lambda u: u.speaker in names):
        turns.append(Turn("assistant" if is_char else "user", list(group)))
    return turns


def scene_key(character: str, dialogue: str) -> str:
    return f"{character}\x1f{dialogue}"


def script_samples(ds: RoleInstruct, opts: WindowOptions | None = None, emotions: bool = True) -> list[Sample]:
    """Every window of every scene of ``ds``'s script as a ``dialogue`` sample, in script order."""
    opts = opts or WindowOptions()
    opts.check()
    scenes: dict[tuple[str, str], list[Utterance]] = {}
    for u in ds.script:
        scenes.setdefault((u.character, u.dialogue), []).append(u)
    out = []
    for (character, dialogue), lines in scenes.items():
        if character not in ds.characters:
            continue
        split = assign_split(scene_key(character, dialogue), opts.val, opts.test)
        turns = scene_turns(lines, character_names(ds.characters[character]))
        answers = [j for j, t in enumerate(turns) if t.role == "assistant" and j > 0]
        for j in answers[::opts.stride]:
            start = max(0, j - opts.window + 1)
            if turns[start].role == "assistant":
                start += 1  # a history starts with the other side (some templates require it)
            window = turns[start:j + 1]
            history = [t.message(emotions) for t in window[:-2]]
            last = window[-2].message(emotions)
            answer = window[-1]
            out.append(Sample(
                id=f"script:{stable_id(character, dialogue, answer.lines[0].id)}", kind="dialogue",
                character=character, instruction=last["content"], references=[answer.content(False, False)],
                split=split, messages=history, speaker=last.get("name"),
                provenance={"source": "script", "dialogue": dialogue,
                            "lines": [u.id for t in window for u in t.lines]}))
    return out


def options_from_config(d) -> WindowOptions:
    return WindowOptions(int(d.dialogue_window), int(d.dialogue_stride), float(d.dialogue_val),
                         float(d.dialogue_test))


def add_script_dialogue(ds: RoleInstruct, data_cfg, emotions: bool) -> int:
    """``data.dialogue=on`` (or ``data.mix=dialogue``): the script's windows join ``ds.samples``;
    returns how many."""
    if not (data_cfg.dialogue or str(data_cfg.mix) == "dialogue"):
        return 0
    built = script_samples(ds, options_from_config(data_cfg), emotions)
    ds.samples.extend(built)
    return len(built)
