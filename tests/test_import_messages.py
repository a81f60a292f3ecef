"""Importing shared chat formats (OpenAI messages, ShareGPT, Alpaca) and exporting to them: small
hand-written Chinese role-play files, the real CLI, round trips, bad rows at file:line, the Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, read_jsonl, read_metrics, run_evaluate, run_train
from rolecraft.data import schema
from rolecraft.data.importers import IMPORTERS
from rolecraft.data.importers.messages import import_messages
from rolecraft.errors import DataError

SRC = REPO / "src"

WUKONG_SYSTEM = "你是孙悟空，花果山美猴王，性子急，说话爱用“俺老孙”。"
OPENAI_ROWS = [
    {"messages": [{"role": "system", "content": WUKONG_SYSTEM},
                  {"role": "user", "content": "大圣，前面山里有妖气！", "name": "猪八戒"},
                  {"role": "assistant", "content": "呆子莫慌，看俺老孙一棒打去！", "name": "孙悟空"},
                  {"role": "user", "content": "师父被妖怪抓走了，怎么办？", "name": "沙僧"},
                  {"role": "assistant", "content": "俺这就打上洞府，把师父救回来！", "name": "孙悟空"}]},
    {"messages": [{"role": "user", "content": "你会七十二变吗？"},
                  {"role": "assistant", "content": "那是自然，俺老孙变化无穷。", "name": "孙悟空"}]},
]
SHAREGPT_ROWS = [
    {"character": "林黛玉", "system": "你是林黛玉，寄居贾府，多愁善感，才思敏捷，说话尖利。",
     "conversations": [{"from": "human", "value": "姑娘今日身子可好些了？"},
                       {"from": "gpt", "value": "不过是老样子，夜里又咳了几回。"},
                       {"from": "human", "value": "要不要请大夫来瞧瞧？"},
                       {"from": "gpt", "value": "罢了，请来请去，也不过是那几味药。"}]},
    {"character": "林黛玉", "conversations": [{"from": "human", "value": "宝二爷又来了。"},
                                            {"from": "gpt", "value": "他来做什么？横竖有他的宝姐姐陪着。"}]},
]
ALPACA_ROWS = [
    {"instruction": "请用诸葛亮的口吻劝刘备三思。", "input": "", "output": "主公且慢，此事关乎大局，不可急于一时。"},
    {"instruction": "评价一下这场战役", "input": "赤壁之战", "output": "东风一起，曹军八十万灰飞烟灭，此天时也。",
     "system": "你是诸葛亮，字孔明，蜀汉丞相。", "history": [["先生近来可好？", "托主公洪福，亮一切安好。"]]},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def run_cli(*args: object, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [full.get("PYTHONPATH")])])
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=timeout)


def test_registered():
    assert IMPORTERS["messages"] is import_messages


def test_openai_multi_turn_becomes_a_dialogue_sample(tmp_path):
    ds, defects = import_messages(write_jsonl(tmp_path / "chat.jsonl", OPENAI_ROWS))
    assert defects == []
    dlg, single = sorted(ds.samples, key=lambda s: s.kind)
    assert dlg.kind == "dialogue" and dlg.character == "孙悟空"  # the answer's name
    assert dlg.instruction == "师父被妖怪抓走了，怎么办？" and dlg.speaker == "沙僧"
    assert dlg.references == ["俺这就打上洞府，把师父救回来！"]
    assert dlg.messages == OPENAI_ROWS[0]["messages"][:3]  # system kept first, then the history
    assert single.kind == "specific" and single.messages is None and single.instruction == "你会七十二变吗？"
    assert ds.characters["孙悟空"].profile == {"名字": "孙悟空", "设定": WUKONG_SYSTEM}


def test_sharegpt_with_top_level_system(tmp_path):
    ds, defects = import_messages(write_jsonl(tmp_path / "sg.jsonl", SHAREGPT_ROWS))
    assert defects == []
    dlg = next(s for s in ds.samples if s.kind == "dialogue")
    assert [m["role"] for m in dlg.messages] == ["system", "user", "assistant"]
    assert dlg.messages[0]["content"].startswith("你是林黛玉") and dlg.speaker is None
    assert ds.characters["林黛玉"].profile["设定"].startswith("你是林黛玉")


def test_alpaca_single_turn_kind_is_an_option_and_history_is_dialogue(tmp_path):
    src = write_jsonl(tmp_path / "alpaca.json", ALPACA_ROWS)
    ds, _ = import_messages(src, character="诸葛亮", single_kind="general")
    kinds = {s.instruction: s for s in ds.samples}
    assert kinds["请用诸葛亮的口吻劝刘备三思。"].kind == "general"
    dlg = kinds["评价一下这场战役\n赤壁之战"]
    assert dlg.kind == "dialogue" and [m["role"] for m in dlg.messages] == ["system", "user", "assistant"]
    assert import_messages(src, character="诸葛亮")[0].samples[0].kind == "specific"  # the default


def test_a_conversation_never_straddles_splits_and_ids_are_stable(tmp_path):
    rows = [{"character": "林黛玉", "conversations": [{"from": "human", "value": f"第{i}个问题"},
                                                     {"from": "gpt", "value": f"第{i}个回答"}]} for i in range(200)]
    src = write_jsonl(tmp_path / "many.jsonl", rows)
    a, _ = import_messages(src)
    b, _ = import_messages(src)
    assert [(s.id, s.split) for s in a.samples] == [(s.id, s.split) for s in b.samples]
    assert {s.split for s in a.samples} == {"train", "val", "test"}
    assert all(s.split == schema.assign_split(f"conversation\x1f{s.id}") for s in a.samples)


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "alpaca"])
def test_round_trip_import_export_import(tmp_path, fmt):
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "oa.jsonl", OPENAI_ROWS)
    write_jsonl(src / "sg.jsonl", SHAREGPT_ROWS)
    write_jsonl(src / "al.jsonl", [{**r, "character": "诸葛亮"} for r in ALPACA_ROWS])
    r = run_cli("data", "import", "messages", src, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "6 samples (dialogue 3, specific 3" in r.stdout
    rx = run_cli("data", "export", "messages", tmp_path / "a", "--format", fmt, "--out", tmp_path / "x.jsonl")
    assert rx.returncode == 0, rx.stderr
    r = run_cli("data", "import", "messages", tmp_path / "x.jsonl", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    a, b = schema.load(tmp_path / "a"), schema.load(tmp_path / "b")

    def key(ds):
        return sorted((s.id, s.kind, s.character, s.instruction, s.references, s.split, s.messages, s.speaker)
                      for s in ds.samples)

    if fmt == "alpaca":  # named speakers do not fit alpaca: that dialogue is left out, with a warning
        assert "1 dialogue sample(s) not exportable as alpaca" in rx.stderr
        assert key(b) == [k for k in key(a) if k[7] is None and not any("name" in m for m in (k[6] or []))]
    else:
        assert key(b) == key(a)
    assert {c.name: c.profile for c in b.characters.values()} == \
        {c.name: c.profile for c in a.characters.values() if c.name in b.characters}


def test_bad_rows_are_reported_at_file_line_and_fail_without_allow_partial(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "bad.jsonl", [
        SHAREGPT_ROWS[0],
        "{not json",
        {"character": "林黛玉", "conversations": [{"from": "robot", "value": "坏"}]},
        {"character": "林黛玉", "conversations": [{"from": "human", "value": "只有问题"}]},
        {"conversations": [{"from": "human", "value": "谁？"}, {"from": "gpt", "value": "不知道是谁在答。"}]},
        {"hello": "world"},
    ])
    # a JSON array: each element is reported at the line it starts on
    (src / "arr.json").write_text('[\n  {"messages": [{"role": "user", "content": "在吗"},\n'
                                  '     {"role": "assistant", "content": "在。", "name": "孙悟空"}]},\n'
                                  '  {"messages": [{"role": "tool", "content": "x"}]}\n]\n', encoding="utf-8")
    out, report = tmp_path / "out", tmp_path / "report.json"
    r = run_cli("data", "import", "messages", src, "--out", out, "--report", report)
    assert r.returncode == 2, r.stderr
    err = r.stderr
    for where in ("bad.jsonl:2: malformed JSON", "bad.jsonl:3: conversations[0]: 'from' 'robot'",
                  "bad.jsonl:4: no assistant turn", "bad.jsonl:5: no character name", "bad.jsonl:6: not a conversation",
                  "arr.json:4: messages[0]: role 'tool'"):
        assert where in err, (where, err)
    assert err.strip().splitlines()[-1].startswith("error: ") and "6 row(s) skipped" in err
    assert "--allow-partial" in err.strip().splitlines()[-1]
    data = json.loads(report.read_text())
    skipped = [d for d in data["defects"] if d["message"].endswith("row skipped") or "line skipped" in d["message"]]
    assert len(skipped) == 6 and {d["line"] for d in skipped} == {2, 3, 4, 5, 6}
    assert [d["kind"] for d in data["defects"] if d not in skipped] == ["profile_missing"]  # 孙悟空: no system turn
    assert len(schema.load(out).samples) == 2  # the rest is written
    r = run_cli("data", "import", "messages", src, "--out", tmp_path / "out2", "--allow-partial")
    assert r.returncode == 0 and "accepted with --allow-partial" in r.stderr


def test_nothing_importable_is_one_line(tmp_path):
    src = write_jsonl(tmp_path / "x.jsonl", [{"hello": "world"}])
    r = run_cli("data", "import", "messages", src, "--out", tmp_path / "out")
    assert r.returncode == 2 and "x.jsonl:1: not a conversation" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "no conversation could be imported" in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_local_path_and_offline_hub_id_fail_fast_in_one_line(tmp_path):
    """Fast = within run_cli's subprocess timeout (a "did not hang" bound, stretched on loaded machines)."""
    r = run_cli("data", "import", "messages", tmp_path / "nope.jsonl", "--out", tmp_path / "o")
    assert r.returncode == 2 and "nope.jsonl: no such file or folder" in r.stderr
    r = run_cli("data", "import", "messages", "nobody/no-such-dataset", "--out", tmp_path / "o",
                env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nobody/no-such-dataset" in lines[0] and "offline" in lines[0], r.stderr


def test_profile_file_and_character_field(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"林黛玉": {"名字": "林黛玉", "出处": "红楼梦"}}, ensure_ascii=False), encoding="utf-8")
    rows = [{**r, "who": r["character"]} for r in SHAREGPT_ROWS]
    for r in rows:
        del r["character"]
    ds, _ = import_messages(write_jsonl(tmp_path / "sg.jsonl", rows), character_field="who", profile=prof)
    assert ds.characters["林黛玉"].profile == {"名字": "林黛玉", "出处": "红楼梦"}
    with pytest.raises(DataError, match="profile file"):
        import_messages(tmp_path / "sg.jsonl", character_field="who", profile=tmp_path / "none.json")


# ---- end to end: import, train, evaluate -----------------------------------------------------

QUESTIONS = ["你最喜欢什么？", "今天心情如何？", "你怕什么？", "你有什么心愿？", "你怎么看朋友？", "你平日做些什么？",
             "你最想去哪里？", "谁是你最敬重的人？"]


@pytest.mark.slow
def test_imported_role_play_trains_and_evaluates(tmp_path, cache_dir):
    src = tmp_path / "src"
    src.mkdir()
    sg, oa = [], []
    for i, q in enumerate(QUESTIONS):
        split = "test" if i % 4 == 0 else "train"
        sg.append({"id": f"dy-{i}", "split": split, "character": "林黛玉", "system": SHAREGPT_ROWS[0]["system"],
                   "conversations": [{"from": "human", "value": "姑娘安好。"}, {"from": "gpt", "value": "你也来了。"},
                                     {"from": "human", "value": q}, {"from": "gpt", "value": f"{q[:-1]}？我只说一句：花谢花飞飞满天。"}]})
        sg.append({"id": f"dy1-{i}", "split": split, "character": "林黛玉",
                   "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "这话问得奇，我偏不答。"}]})
        oa.append({"id": f"wk-{i}", "split": split, "messages": [
            {"role": "system", "content": WUKONG_SYSTEM},
            {"role": "user", "content": "大圣！", "name": "猪八戒"}, {"role": "assistant", "content": "呆子何事？"},
            {"role": "user", "content": q, "name": "猪八戒"},
            {"role": "assistant", "content": f"俺老孙说：{q[1:-1]}，不在话下！", "name": "孙悟空"}]})
        oa.append({"id": f"wk1-{i}", "split": split, "messages": [
            {"role": "user", "content": q}, {"role": "assistant", "content": "俺老孙去也！", "name": "孙悟空"}]})
    write_jsonl(src / "daiyu.sharegpt.jsonl", sg)
    write_jsonl(src / "wukong.openai.jsonl", oa)
    data = tmp_path / "data"
    r = run_cli("data", "import", "messages", src, "--out", data)
    assert r.returncode == 0, r.stderr
    assert "2 characters, 32 samples (dialogue 16, specific 16" in r.stdout
    # data=dialogue (training on the dialogue samples' turns) comes with the other part of issue 17;
    # until then data=hybrid trains on the single-question conversations (kind specific) of both files
    runs = tmp_path / "runs"
    r = run_train([f"data.root={data}", "data=hybrid", "trainer.max_steps=2", "data.max_eval_samples=4",
                   "eval.generation.max_new_tokens=8", "trainer.enable_progress_bar=false",
                   f"hydra.run.dir={runs / 'run'}"], cache_dir, runs)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(runs / "run")
    assert m["train/steps"] == 2 and m["train/dataset_samples"] == 12
    r = run_evaluate(["answers=model", "benchmark=roleinstruct", f"benchmark.root={data}", "benchmark.max_samples=8",
                      "generation.max_new_tokens=8"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    assert rows and {row["character"] for row in rows} <= {"林黛玉", "孙悟空"}
