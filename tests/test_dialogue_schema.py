"""Dialogue samples in the canonical format: the history round-trips through save/load, and every
malformed turn is refused with the file:line and the turn's index."""

from __future__ import annotations

import json

import pytest

from rolecraft.data import schema
from rolecraft.errors import DataError

HISTORY = [{"role": "system", "content": "场景：茶馆。"},
           {"role": "user", "content": "掌柜的，来壶茶。", "name": "老李"},
           {"role": "assistant", "content": "好嘞，您稍等。"}]


def _dataset(tmp_path, sample: dict):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"format": "roleinstruct", "version": 1, "name": "t"}))
    (root / "characters.jsonl").write_text(json.dumps({"name": "王掌柜", "profile": {"性格": "热情"}}, ensure_ascii=False) + "\n")
    (root / "script.jsonl").write_text("")
    (root / "samples.jsonl").write_text(json.dumps(sample, ensure_ascii=False) + "\n")
    return root


def _sample(**over) -> dict:
    row = {"id": "d1", "kind": "dialogue", "character": "王掌柜", "instruction": "再来碟瓜子。",
           "references": ["瓜子马上到。"], "split": "train", "messages": HISTORY, "speaker": "老李"}
    row.update(over)
    return row


def test_a_dialogue_sample_round_trips_with_its_history_and_speaker(tmp_path):
    ds = schema.load(_dataset(tmp_path, _sample()))
    s = ds.samples[0]
    assert s.kind == "dialogue" and s.messages == HISTORY and s.speaker == "老李"
    out = schema.save(ds, tmp_path / "copy")
    row = json.loads((out / "samples.jsonl").read_text(encoding="utf-8"))
    assert row["messages"] == HISTORY and row["speaker"] == "老李"
    # other kinds write no empty optional fields
    plain = _sample(kind="specific", id="s1")
    plain.pop("messages"), plain.pop("speaker")
    (tmp_path / "b").mkdir()
    ds2 = schema.load(_dataset(tmp_path / "b", plain))
    row2 = json.loads((schema.save(ds2, tmp_path / "copy2") / "samples.jsonl").read_text(encoding="utf-8"))
    assert "messages" not in row2 and "speaker" not in row2


@pytest.mark.parametrize("messages, says", [
    ([{"role": "narrator", "content": "x"}], "messages[0]: role 'narrator'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "messages[1]: a system turn may only come first"),
    ([{"role": "user", "content": "  "}], "messages[0]: 'content' is empty"),
    ([{"role": "user", "content": "a", "name": ""}], "messages[0]: 'name' must be"),
    ([{"role": "user", "content": "a", "speaker": "x"}], "unknown field(s) speaker"),
    (["hello"], "messages[0] must be an object"),
])
def test_a_bad_turn_names_the_line_and_the_turn(tmp_path, messages, says):
    root = _dataset(tmp_path, _sample(messages=messages))
    with pytest.raises(DataError) as e:
        schema.load(root)
    assert "samples.jsonl:1: " in str(e.value) and says in str(e.value)


def test_messages_on_another_kind_is_refused(tmp_path):
    root = _dataset(tmp_path, _sample(kind="general"))
    with pytest.raises(DataError, match="'messages' belongs to dialogue samples"):
        schema.load(root)
