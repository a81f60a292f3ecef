"""The embedded demo dataset (src/rolecraft/data/demo) is valid and has the documented shape."""

from collections import Counter
from pathlib import Path

import pytest

from rolecraft.data import EMBEDDED_DEMO, resolve_data_root
from rolecraft.data.schema import EMOTIONS, KINDS, SPLITS, load

DEMO = Path(__file__).resolve().parents[1] / "src" / "rolecraft" / "data" / "demo"

N_CHARACTERS = 5
N_GENERAL = 48  # shared general instructions, answered by every character
PROFILE_FIELDS = [
    "名字", "年龄", "身高", "体重", "生日", "星座", "性格特点", "背景", "爱好", "特长",
    "梦想", "关系", "喜欢的食物", "讨厌的东西", "说话风格",
]
# Rows per (kind, split) over the whole file.
EXPECTED = {
    ("specific", "train"): 26 * N_CHARACTERS,
    ("specific", "val"): 3 * N_CHARACTERS,
    ("specific", "test"): 7 * N_CHARACTERS,
    ("general", "train"): 36 * N_CHARACTERS,
    ("general", "val"): 3 * N_CHARACTERS,
    ("general", "test"): 9 * N_CHARACTERS,
    ("raw", "train"): 36 * N_CHARACTERS,
    ("raw", "val"): 3 * N_CHARACTERS,
    ("raw", "test"): 9 * N_CHARACTERS,
}


@pytest.fixture(scope="module")
def ds():
    return load(DEMO)


def test_embedded_root_points_here():
    assert resolve_data_root(EMBEDDED_DEMO) == DEMO


def test_meta(ds):
    assert ds.meta["format"] == "roleinstruct"
    assert ds.meta["version"] == 1
    assert ds.meta["name"] == "rolecraft-demo"
    assert ds.meta["license"] == "Apache-2.0"


def test_characters(ds):
    assert len(ds.characters) == N_CHARACTERS
    for c in ds.characters.values():
        assert list(c.profile) == PROFILE_FIELDS, c.name
        assert all(v.strip() for v in c.profile.values()), c.name
        assert c.profile["名字"] == c.name


def test_all_emotions_present_and_neutral_most_common(ds):
    counts = Counter(u.emotion for u in ds.script)
    assert set(counts) == set(EMOTIONS)
    assert counts.most_common(1)[0][0] == "neutral"
    assert 0.35 <= counts["neutral"] / len(ds.script) <= 0.55


def test_every_character_speaks_in_own_script(ds):
    for name in ds.characters:
        lines = ds.script_of(name)
        assert lines, name
        assert any(u.speaker == name for u in lines), name


def test_script_turns_are_consecutive(ds):
    by_dialogue: dict[str, list[int]] = {}
    for u in ds.script:
        by_dialogue.setdefault(u.dialogue, []).append(u.turn)
    assert len(by_dialogue) == 3 * N_CHARACTERS
    for dialogue, turns in by_dialogue.items():
        assert turns == list(range(1, len(turns) + 1)), dialogue
        assert 12 <= len(turns) <= 16, dialogue


def test_kind_split_counts(ds):
    counts = Counter((s.kind, s.split) for s in ds.samples)
    for kind in set(KINDS) - {"dialogue"}:  # the demo's dialogue comes from its script, not samples.jsonl
        for split in SPLITS:
            assert counts[(kind, split)] > 0, (kind, split)
    assert dict(counts) == EXPECTED


def test_per_character_counts(ds):
    for name in ds.characters:
        mine = Counter((s.kind, s.split) for s in ds.samples if s.character == name)
        assert mine == Counter({k: v // N_CHARACTERS for k, v in EXPECTED.items()}), name


def test_general_and_raw_share_instructions_and_splits(ds):
    def table(kind):
        rows = {}
        for s in ds.samples:
            if s.kind == kind:
                rows[(s.character, s.instruction)] = s.split
        return rows

    general, raw = table("general"), table("raw")
    assert general == raw
    # the same instruction has the same split for every character
    split_of: dict[str, str] = {}
    for (_, instruction), split in general.items():
        assert split_of.setdefault(instruction, split) == split, instruction
    assert len(split_of) == N_GENERAL
    # every character answers every general instruction
    for name in ds.characters:
        assert {i for (c, i) in general if c == name} == set(split_of), name


def test_raw_answer_is_the_same_for_every_character(ds):
    by_instruction: dict[str, set[tuple[str, ...]]] = {}
    for s in ds.samples:
        if s.kind == "raw":
            by_instruction.setdefault(s.instruction, set()).add(tuple(s.references))
    assert all(len(v) == 1 for v in by_instruction.values())


def test_general_test_split_has_two_references(ds):
    for s in ds.samples:
        if s.kind == "general":
            assert len(s.references) == (2 if s.split == "test" else 1), s.id
            assert len(set(s.references)) == len(s.references), s.id


def test_ids_unique(ds):
    sample_ids = [s.id for s in ds.samples]
    script_ids = [u.id for u in ds.script]
    assert len(sample_ids) == len(set(sample_ids))
    assert len(script_ids) == len(set(script_ids))
    assert not set(sample_ids) & set(script_ids)
