"""`rolecraft data validate` / `rolecraft data stats` on a small dataset built with schema.save,
run through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rolecraft.data import resolve_data_root, schema
from rolecraft.data.schema import Character, RoleInstruct, Sample, Utterance, assign_split, split_key, stable_id
from rolecraft.data.stats import dataset_stats, format_stats

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=300)


def _sample(kind: str, character: str, instruction: str, refs: list[str]) -> Sample:
    return Sample(id=stable_id(kind, character, instruction), kind=kind, character=character,
                  instruction=instruction, references=refs,
                  split=assign_split(split_key(kind, character, instruction)))


def small_dataset() -> RoleInstruct:
    chars = {
        "桃子": Character("桃子", {"名字": "桃子", "年龄": "20岁", "性格特点": "内向、乐观"}),
        "刘星": Character("刘星", {"名字": "刘星", "年龄": "12岁"}),
    }
    lines = [("桃子", "其他", "你好", "neutral"), ("桃子", "桃子", "好滴", "happiness"),
             ("桃子", "其他", "再见", None), ("刘星", "刘星", "老弟你等着", "other"),
             ("刘星", "夏雨", "谁的惨叫声", "neutral")]
    script = []
    turns: dict[str, int] = {}
    for char, speaker, text, emo in lines:
        turns[char] = turns.get(char, 0) + 1
        script.append(Utterance(id=stable_id("script", char, "1", str(turns[char])), character=char,
                                dialogue=f"{char}#1", turn=turns[char], speaker=speaker, text=text, emotion=emo))
    samples = [
        _sample("specific", "桃子", "桃子，你喜欢什么颜色？", ["浅蓝色。"]),
        _sample("specific", "刘星", "刘星，你的梦想是什么？", ["成为科学家！", "发明家"]),
        _sample("general", "桃子", "写一首诗。", ["春天来了", "花开了", "鸟叫了"]),
        _sample("general", "刘星", "写一首诗。", ["我不会写诗"]),
        _sample("raw", "桃子", "1+1=?", ["2"]),
    ]
    return RoleInstruct(root=None, meta={"name": "tiny"}, characters=chars, script=script, samples=samples)


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return schema.save(small_dataset(), tmp_path / "tiny")


def test_validate_ok(tiny: Path):
    r = run_cli("data", "validate", tiny)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: 2 characters, 5 utterances")
    assert "specific 2, general 2, raw 1" in r.stdout
    assert r.stderr == ""


def test_stats_json_keys_and_numbers(tiny: Path):
    r = run_cli("data", "stats", tiny, "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    for key in ("characters", "specific_instructions", "general_instructions", "responses", "utterances", "emotions"):
        assert key in st
    assert st["characters"] == 2
    assert st["utterances"] == 5
    assert st["dialogues"] == 2
    assert st["specific_instructions"] == 2
    assert st["general_instructions"] == 2
    assert st["unique_general_instructions"] == 1
    assert st["raw_instructions"] == 1
    assert st["instructions"] == 5
    assert st["responses"] == 1 + 2 + 3 + 1 + 1
    assert st["specific_responses"] == 3 and st["general_responses"] == 4 and st["raw_responses"] == 1
    assert set(st["emotions"]) == set(schema.EMOTIONS) | {"unlabeled"}
    assert st["emotions"]["neutral"] == 2 and st["emotions"]["unlabeled"] == 1 and st["emotions"]["anger"] == 0
    assert st["emotion_shares"]["neutral"] == 0.5
    assert sum(st["splits"].values()) == 5
    assert st["avg_response_length"] == round(sum(map(len, ["浅蓝色。", "成为科学家！", "发明家", "春天来了", "花开了", "鸟叫了", "我不会写诗", "2"])) / 8, 1)


def test_stats_table(tiny: Path):
    r = run_cli("data", "stats", tiny)
    assert r.returncode == 0, r.stderr
    assert "Characters" in r.stdout and "General instructions" in r.stdout
    assert "Emotion distribution" in r.stdout
    assert "neutral" in r.stdout and "█" in r.stdout


def test_format_stats_all_labels_listed():
    text = format_stats(dataset_stats(small_dataset()))
    for label in schema.EMOTIONS:
        assert label in text


def test_profile_length_is_rendered_profile():
    st = dataset_stats(small_dataset())
    a = len("名字：桃子；年龄：20岁；性格特点：内向、乐观")
    b = len("名字：刘星；年龄：12岁")
    assert st["avg_profile_length"] == round((a + b) / 2, 1)


def test_missing_dir_is_one_line_error(tmp_path: Path):
    for cmd in ("stats", "validate"):
        r = run_cli("data", cmd, tmp_path / "nope")
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert run_cli("data", "stats", tmp_path / "nope").returncode == 2
    assert run_cli("data", "validate", tmp_path / "nope").returncode == 2


def test_usage_errors_exit_2():
    r = run_cli("data")
    assert r.returncode == 2
    r = run_cli("data", "import", "unknown-format", "x", "--out", "y")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_resolve_data_root(tmp_path: Path):
    import rolecraft.data

    assert resolve_data_root("embedded:demo") == Path(rolecraft.data.__file__).resolve().parent / "demo"
    assert resolve_data_root(str(tmp_path)) == tmp_path
    assert resolve_data_root("~/x") == Path.home() / "x"


def test_embedded_demo_validates():
    demo = resolve_data_root("embedded:demo")
    if not (demo / "meta.json").is_file():
        pytest.skip(f"the demo dataset is not in the package yet ({demo})")
    r = run_cli("data", "validate", "embedded:demo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: ")
    r = run_cli("data", "stats", "embedded:demo", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["characters"] >= 1


def test_cli_imports_no_deep_learning_stack(tiny: Path):
    code = (
        "import sys, rolecraft.cli as c\n"
        f"c.main(['data', 'validate', {str(tiny)!r}])\n"
        f"c.main(['data', 'stats', {str(tiny)!r}, '--json'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'lightning', 'peft') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout


def test_cache_dir_defaults_follow_rolecraft_cache(monkeypatch, tmp_path):
    """`rolecraft export` and `rolecraft retrieval eval` use the same cache as the Hydra entry
    points: $ROLECRAFT_CACHE when set (an unset variable keeps ~/.cache/rolecraft)."""
    from rolecraft.cli import build_parser

    monkeypatch.setenv("ROLECRAFT_CACHE", str(tmp_path))
    p = build_parser()
    assert p.parse_args(["export", "RUN", "--merge", "OUT"]).cache_dir == str(tmp_path)
    assert p.parse_args(["retrieval", "eval", "DATA"]).cache_dir == str(tmp_path)
    monkeypatch.delenv("ROLECRAFT_CACHE")
    assert build_parser().parse_args(["export", "RUN", "--merge", "OUT"]).cache_dir == "~/.cache/rolecraft"
