"""One reading of emotion labels (rolecraft.data.emotions) for importers, agreement and validate."""

from __future__ import annotations

import pytest

from rolecraft.data import schema
from rolecraft.data.emotions import EMOTION_ALIASES, EMOTION_ZH, EMOTIONS, normalise_emotion


def test_the_ten_labels_in_english_any_case_and_chinese():
    for en, zh in EMOTION_ZH.items():
        assert normalise_emotion(en) == en
        assert normalise_emotion(f"  {en.upper()} ") == en
        assert normalise_emotion(zh) == en
        assert normalise_emotion(zh, aliases=False) == en
    assert schema.EMOTIONS is EMOTIONS  # the format's labels are these


@pytest.mark.parametrize("raw, label", [("激动", "excitement"), ("生气", "anger"), ("Grateful", "happiness"),
                                        ("joy", "happiness"), ("其它", "other"), ("中性", "neutral"),
                                        (" SAD ", "sadness")])
def test_aliases_map_to_a_canonical_label_only_when_asked(raw, label):
    assert normalise_emotion(raw) == label
    assert normalise_emotion(raw, aliases=False) is None


@pytest.mark.parametrize("raw", ["grumpy", "", "null", None, 3, "快乐就好"])
def test_unknown_and_non_labels_are_none(raw):
    assert normalise_emotion(raw) is None


def test_every_alias_maps_into_the_ten():
    assert set(EMOTION_ALIASES.values()) <= set(EMOTIONS)
    assert all(normalise_emotion(k) == v for k, v in EMOTION_ALIASES.items())


def test_importers_keep_the_readme_names():
    """README names EMOTION_ALIASES and CPED_TO_EMOTION: importable where it says."""
    from rolecraft.data.importers import CPED_TO_EMOTION
    from rolecraft.data.importers import EMOTION_ALIASES as reexported

    assert reexported is EMOTION_ALIASES and CPED_TO_EMOTION["depress"] == "frustration"


def test_validate_names_the_label_an_alias_stands_for(tmp_path):
    from rolecraft.data import resolve_data_root
    from rolecraft.errors import DataError

    ds = schema.load(resolve_data_root("embedded:demo"))
    ds.script[0].emotion = "生气"
    out = schema.save(ds, tmp_path / "ds")
    with pytest.raises(DataError, match=r"unknown emotion label '生气'; use one of anger.*'生气' reads as 'anger'"):
        schema.load(out)
