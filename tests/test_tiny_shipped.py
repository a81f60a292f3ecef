"""The embedded tiny model ships with the package: its files are what build.json says, it is
what `ensure_embedded` serves for the demo corpus, and a rebuild from the recipe gives the same
bytes (on this kind of machine; see the README on cross-machine builds)."""

from __future__ import annotations

import json

import pytest

from rolecraft.modeling import tiny


def test_shipped_files_match_their_record():
    rec = tiny.shipped_record()
    assert rec is not None, f"no build.json in {tiny.SHIPPED}"
    assert set(rec["sha256"]) == set(tiny.SHIPPED_FILES)
    for name, digest in rec["sha256"].items():
        assert tiny._sha256(tiny.SHIPPED / name) == digest, name
    assert (tiny.SHIPPED / "model.safetensors").stat().st_size < 5_000_000  # a few MB, as promised


def test_the_demo_recipe_is_served_from_the_shipped_copy(tmp_path):
    """Same fingerprint: nothing is built, nothing is written to the cache."""
    assert tiny.shipped_record()["fingerprint"] == tiny._fingerprint(tiny.demo_corpus())
    assert tiny.ensure_embedded("tiny", tmp_path) == tiny.SHIPPED
    assert not (tmp_path / "embedded").exists()
    config = json.loads((tiny.SHIPPED / "config.json").read_text(encoding="utf-8"))
    assert config["hidden_size"] == tiny.ARCH["hidden_size"] and config["vocab_size"] == tiny.VOCAB_SIZE


@pytest.mark.slow
def test_a_rebuild_without_the_shipped_copy_gives_the_same_bytes(tmp_path, monkeypatch):
    """With no shipped copy the recipe builds into the cache (the fallback for a changed recipe),
    and on this machine the build reproduces the shipped files byte for byte."""
    monkeypatch.setattr(tiny, "SHIPPED", tmp_path / "not-shipped")
    built = tiny.ensure_embedded("tiny", tmp_path / "cache")
    assert built.parent == tmp_path / "cache" / "embedded" and built.name.startswith("tiny-")
    monkeypatch.undo()
    rec = tiny.shipped_record()
    differing = [f for f in tiny.SHIPPED_FILES if tiny._sha256(built / f) != rec["sha256"][f]]
    assert not differing, (f"rebuilt {differing} differ from the shipped copy (built with {rec['built_with']}); "
                           "if the recipe changed on purpose, run python -m rolecraft.modeling.tiny --ship")
