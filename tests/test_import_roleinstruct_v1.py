"""Importing the authors' RoleInstruct v1 layout: the real published data (when present) and
small synthetic folders with one quirk each; plus `rolecraft data validate` on bad input.
The CLI runs for real in subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rolecraft.data import schema
from rolecraft.data.importers import EMOTION_ALIASES, Defect, import_roleinstruct_v1
from rolecraft.data.importers.roleinstruct_v1 import parse_emotion_prefix, repair_escapes
from rolecraft.errors import DataError
from rolecraft.fileio import OUTPUT_MARKER

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
REAL = REPO.parent / "shared" / "data" / "roleinstruct-v1" / "role"

real_data = pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"the published RoleInstruct v1 data is not at {REAL} (only CI and project machines have ../shared/data)",
)


def run_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI's output decoded as written: a progress bar's \r stays \r (text=True would turn
    it into a newline), so lines are counted as a terminal shows them."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env["TQDM_MININTERVAL"] = "0.1"  # redraw as on a terminal (off one, bars redraw every 10 s)
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)],
                       capture_output=True, env=env, cwd=cwd or REPO, timeout=600)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def without_bars(text: str) -> list[str]:
    """The lines of ``text`` minus progress-bar redraws and blank lines."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip() and not line.startswith("import:")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ======================================================================================
# The real published data
# ======================================================================================


@pytest.fixture(scope="module")
def real_import(tmp_path_factory):
    if not REAL.is_dir():
        pytest.skip(f"the published RoleInstruct v1 data is not at {REAL}")
    base = tmp_path_factory.mktemp("real")
    out, report = base / "out", base / "report.json"
    r = run_cli("data", "import", "roleinstruct-v1", REAL, "--out", out, "--report", report)
    return r, out, report


@real_data
@pytest.mark.slow
class TestRealData:
    def test_import_succeeds(self, real_import):
        r, out, report = real_import
        assert r.returncode == 0, r.stderr[-3000:]
        assert sorted(p.name for p in out.iterdir()) == sorted([*schema.FILES, OUTPUT_MARKER])
        assert "14 characters" in r.stdout
        assert re.search(r"^\d+ defects: ", r.stdout, re.M)

    def test_fourteen_characters_named_by_folder(self, real_import):
        _, out, _ = real_import
        chars = {c["name"]: c["profile"] for c in read_jsonl(out / "characters.jsonl")}
        assert len(chars) == 14
        assert set(chars) == {p.name for p in REAL.iterdir() if p.is_dir()}
        # 何赛: the folder wins, the profile keeps its own spelling.
        assert chars["何赛"]["名字"] == "何塞"
        assert list(chars["何赛"])[:3] == ["名字", "年龄", "身高"]
        # A keyless segment continues the previous field.
        assert chars["何赛"]["性格特点"].startswith("热情、坚定、具有领袖气质，同时也非常关心社区。")
        assert chars["桃子"]["爸爸妈妈"] == "科技公司总经理和财务总监"

    def test_terminal_gets_a_summary_the_report_every_defect(self, real_import):
        r, _, report = real_import
        # lines as a terminal shows them: the progress bar redraws one line with \r
        lines = (r.stdout + r.stderr).split("\n")
        assert len(lines) < 30, "\n".join(lines)  # 2,122 defects: counts by kind, first of each
        # the progress bar over the 14 character folders
        assert re.search(r"import:\s+\d+%\|.*\| \d+/14 ", r.stderr), r.stderr[:300]
        assert f"defects in 14 kinds, the first of each shown (every one in {report})" in r.stderr
        assert re.search(r"^\s+1036 duplicate_instruction\s+e\.g\. \S+\.jsonl?:\d+: instruction repeated",
                         r.stderr, re.M)

    def test_known_quirks_reported_with_file_and_line(self, real_import):
        _, _, report = real_import
        err = "\n".join(f"{d['file']}:{d['line']}: {d['message']}" if d["line"] is not None
                        else f"{d['file']}: {d['message']}"
                        for d in json.loads(report.read_text(encoding="utf-8"))["defects"])
        expect = [
            r"董文洁_general_rp5\.jsonl:157: invalid JSON escape",
            r"何赛_desc\.txt:1: profile names the character '何塞' but the folder is '何赛'",
            r"董文洁_scriopt\.json: the character '董文洁' never speaks in its script \(most lines: '童文洁'",
            r"何赛_scriopt\.jsonl:2029: stray emotion label '激动' mapped to 'excitement'",
            r"樊胜美_scriopt\.jsonl:45: malformed emotion prefix '\(\(其他\)\)' read as 'other'",
            r"何赛_scriopt\.jsonl:238: emotion label 'grateful' without parentheses",
            r"樊胜美_scriopt\.jsonl:\d+: emotion label '沮丧' without parentheses read as 'frustration'",
            r"周小北general_rp1\.jsonl: file name variant \(no underscore",
            r"刘星_specific_QA\.\.json: file name variant \(2 dots",
            r"桃子_general_rp3-5\.json: file name variant \(one file for answer rounds rp3-rp5",
            r"桃子_scriopt\.json: a \.json file holding JSON lines",
            r"李娜_general_rp1\.jsonl: lacks 107 of the 1479 instructions",
            r"赵明轩_general_rp2\.jsonl: lacks 115 of the 1479 instructions",
            r"李明哲_general_rp1\.jsonl:\d+: instruction repeated \(first at line \d+ of this file\)",
            r"董文洁_general_rp4\.jsonl:907: rp row without a 'generated' answer",
        ]
        for pattern in expect:
            assert re.search(pattern, err), pattern
        # every defect names a file under SRC (and a line where it has one)
        for line in err.splitlines():
            assert line.startswith(str(REAL)), line

    def test_report_counts_by_kind(self, real_import):
        _, _, report = real_import
        rep = json.loads(report.read_text(encoding="utf-8"))
        counts = rep["defect_counts"]
        assert counts["invalid_escape"] == 1
        assert counts["stray_emotion_label"] == 416        # (激动)
        assert counts["malformed_emotion_prefix"] == 53    # ((其他))
        assert counts["bare_emotion_label"] == 445         # 沮丧…, grateful…, sadness…
        assert counts["name_mismatch"] == 2                # 何赛/何塞, 董文洁/童文洁
        assert counts.get("unknown_emotion_label", 0) == 0
        assert counts.get("character_skipped", 0) == 0
        assert len(rep["defects"]) == sum(counts.values())
        assert all({"file", "line", "kind", "message"} <= set(d) for d in rep["defects"])

    def test_stray_labels_mapped(self, real_import):
        _, out, _ = real_import
        utts = read_jsonl(out / "script.jsonl")
        assert all(u["emotion"] in schema.EMOTIONS for u in utts)
        labels = "|".join(map(re.escape, EMOTION_ALIASES))
        prefix = re.compile(rf"^\s*[(（]+\s*({labels})\s*[)）]+", re.I)
        assert not [u["text"] for u in utts if prefix.match(u["text"])]
        by_text = {(u["character"], u["text"]): u for u in utts}
        assert by_text[("何赛", "但是我现在有点小激动")]["emotion"] == "excitement"
        assert by_text[("何赛", "谢谢您替我父亲写了律师函")]["emotion"] == "happiness"
        assert by_text[("刘星", "有人打我")]["emotion"] == "sadness"
        assert by_text[("樊胜美", "这是干什么呢")]["emotion"] == "other"
        assert by_text[("周小北", "这么说你想")]["emotion"] == "frustration"
        assert by_text[("樊胜美", "都可以看看")]["speaker"] == "其他"         # role "(其他)", "(中立)(其他)…"
        assert by_text[("周晨曦", "(在动物园)哇！这个动物园真的很大。")]["emotion"] == "excitement"
        # one dialogue per script file, turns from 1
        first = [u for u in utts if u["character"] == "董文洁"][:2]
        assert [u["turn"] for u in first] == [1, 2] and first[0]["speaker"] == "童文洁"

    def test_general_aligned_by_instruction_text(self, real_import):
        _, out, _ = real_import
        samples = read_jsonl(out / "samples.jsonl")
        general = {(s["character"], s["instruction"]): s for s in samples if s["kind"] == "general"}
        # 李娜 rp1 has 1372 lines, rp2 1479: the last instruction of rp2 sits at another line.
        rp1 = {r["instruction"].strip(): r["generated"].strip() for r in read_jsonl(REAL / "李娜" / "李娜_general_rp1.jsonl")}
        rp2 = read_jsonl(REAL / "李娜" / "李娜_general_rp2.jsonl")
        for row in rp2[-3:] + rp2[:3]:
            key = row["instruction"].strip()
            refs = general[("李娜", key)]["references"]
            assert row["generated"].strip() in refs
            if key in rp1:
                assert refs[0] == rp1[key]
        for s in general.values():
            assert 1 <= len(s["references"]) <= 5
            assert len(set(s["references"])) == len(s["references"])

    def test_stats_sane(self, real_import):
        _, out, _ = real_import
        r = run_cli("data", "stats", out, "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["characters"] == 14
        assert st["unique_general_instructions"] == 1479
        assert 14 * 1479 - 20 <= st["general_instructions"] <= 14 * 1479
        assert 7000 <= st["specific_instructions"] <= 7453
        assert st["raw_instructions"] == 0
        assert st["instructions"] == st["specific_instructions"] + st["general_instructions"]
        assert st["responses"] == st["specific_responses"] + st["general_responses"]
        assert 3 * st["general_instructions"] < st["general_responses"] <= 5 * st["general_instructions"]
        assert st["utterances"] > 100_000 and st["dialogues"] == 14
        assert st["emotions"]["unlabeled"] == 0
        assert set(st["emotions"]) == set(schema.EMOTIONS) | {"unlabeled"}
        shares = st["emotion_shares"]
        assert abs(sum(shares.values()) - 1) < 1e-3
        assert 0.45 < shares["neutral"] < 0.6          # paper (20 characters): 51.1%
        assert max(shares, key=shares.get) == "neutral"
        assert 300 < st["avg_profile_length"] < 500     # paper: 394
        samples = read_jsonl(out / "samples.jsonl")
        assert st["responses"] == sum(len(s["references"]) for s in samples)
        table = run_cli("data", "stats", out)
        assert table.returncode == 0 and "Emotion distribution" in table.stdout

    def test_written_directory_validates(self, real_import):
        _, out, _ = real_import
        r = run_cli("data", "validate", out)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("OK: 14 characters")

    def test_rerun_is_byte_identical(self, real_import, tmp_path):
        r, out, _ = real_import
        again = tmp_path / "again"
        r2 = run_cli("data", "import", "roleinstruct-v1", REAL, "--out", again)
        assert r2.returncode == 0, r2.stderr[-2000:]
        for name in schema.FILES:
            assert (out / name).read_bytes() == (again / name).read_bytes(), name
        # the same defects summarised (the header differs: r wrote a --report, r2 says how to get one)
        assert without_bars(r2.stderr)[1:] == without_bars(r.stderr)[1:]
        assert "rerun with --report FILE" in without_bars(r2.stderr)[0]


# ======================================================================================
# Synthetic folders, one quirk each
# ======================================================================================

DESC = "名字：{name}，年龄：20岁；性格特点：内向、乐观，同时也很温柔；爱好：摄影"


def jl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def make_character(root: Path, name: str = "桃子", files: dict[str, str] | None = None,
                   drop: tuple[str, ...] = ()) -> Path:
    """A clean character folder; ``files`` overrides or adds files (name -> text)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    base = {
        f"{name}_desc.txt": DESC.format(name=name) + "\n",
        f"{name}_scriopt.jsonl": jl([
            {"role": "其他", "content": "(中立)你好"},
            {"role": name, "content": "(快乐)好滴"},
        ]),
        f"{name}_specific_QA.json": json.dumps(
            [{"instruction": f"{name}，你喜欢什么？", "generated": "摄影！"}], ensure_ascii=False, indent=2),
        f"{name}_general_rp1.jsonl": jl([
            {"role": name, "instruction": "写一首诗。", "generated": "春天来了"},
            {"role": name, "instruction": "1+1等于几？", "generated": "等于2"},
        ]),
        f"{name}_general_rp2.jsonl": jl([
            {"role": name, "instruction": "写一首诗。", "generated": "花开了"},
            {"role": name, "instruction": "1+1等于几？", "generated": "是2"},
        ]),
    }
    base.update(files or {})
    for fname, text in base.items():
        if fname in drop:
            continue
        (d / fname).write_text(text, encoding="utf-8")
    return d


def kinds(defects: list[Defect]) -> dict[str, list[Defect]]:
    out: dict[str, list[Defect]] = {}
    for d in defects:
        out.setdefault(d.kind, []).append(d)
    return out


def test_clean_folder_has_no_defects(tmp_path: Path):
    make_character(tmp_path)
    ds, defects = import_roleinstruct_v1(tmp_path)
    assert defects == []
    assert list(ds.characters) == ["桃子"]
    assert ds.characters["桃子"].profile == {
        "名字": "桃子", "年龄": "20岁", "性格特点": "内向、乐观，同时也很温柔", "爱好": "摄影"}
    assert [(u.turn, u.speaker, u.text, u.emotion) for u in ds.script] == [
        (1, "其他", "你好", "neutral"), (2, "桃子", "好滴", "happiness")]
    assert {u.dialogue for u in ds.script} == {"桃子#1"}
    gen = {s.instruction: s.references for s in ds.samples if s.kind == "general"}
    assert gen == {"写一首诗。": ["春天来了", "花开了"], "1+1等于几？": ["等于2", "是2"]}
    for s in ds.samples:
        assert s.id == schema.stable_id(s.kind, "桃子", s.instruction)
        assert s.split == schema.assign_split(schema.split_key(s.kind, "桃子", s.instruction))


def test_bad_escape_repaired_and_reported(tmp_path: Path):
    bad = '{"role": "桃子", "instruction": "写一首诗。", "generated": "好的\\n\\用红色"}\n'
    arr = '[\n  {"instruction": "a", "generated": "x"},\n  {"instruction": "b",\n   "generated": "C:\\q\\\\q"}\n]'
    make_character(tmp_path, files={"桃子_general_rp2.jsonl": jl([{"role": "桃子", "instruction": "1+1等于几？", "generated": "是2"}]) + bad,
                                    "桃子_specific_QA.json": arr})
    ds, defects = import_roleinstruct_v1(tmp_path)
    esc = kinds(defects)["invalid_escape"]
    esc.sort(key=lambda d: d.file)
    assert [(Path(d.file).name, d.line) for d in esc] == [("桃子_general_rp2.jsonl", 2), ("桃子_specific_QA.json", 4)]
    assert str(esc[0]).startswith(f"{tmp_path / '桃子' / '桃子_general_rp2.jsonl'}:2: invalid JSON escape \\用")
    gen = {s.instruction: s.references for s in ds.samples if s.kind == "general"}
    assert "好的\n\\用红色" in gen["写一首诗。"]
    spe = {s.instruction: s.references for s in ds.samples if s.kind == "specific"}
    assert spe["b"] == ["C:\\q\\q"]  # stray \q kept as a literal backslash; valid \\ left alone


def test_repair_escapes_keeps_valid_pairs():
    fixed, offs = repair_escapes(r'"a\\q \n \u00e9 \x \""')
    assert json.loads(fixed) == "a\\q \n é \\x \""
    assert len(offs) == 1


@pytest.mark.parametrize("content, text, emotion, issue", [
    ("(中立)你那么着急", "你那么着急", "neutral", None),
    ("（中立）你那么着急", "你那么着急", "neutral", None),
    ("(中立) 你那么着急", "你那么着急", "neutral", None),
    ("（中立) 你好", "你好", "neutral", None),
    ("( 愤怒 )你好", "你好", "anger", None),
    ("((其他))这是干什么呢", "这是干什么呢", "other", "malformed_emotion_prefix"),
    ("(激动)但是我现在有点小激动", "但是我现在有点小激动", "excitement", "stray_emotion_label"),
    ("(生气)走开", "走开", "anger", "stray_emotion_label"),
    ("(开心)好", "好", "happiness", "stray_emotion_label"),
    ("(Happy)好", "好", "happiness", "stray_emotion_label"),
    ("沮丧同意", "同意", "frustration", "bare_emotion_label"),
    ("grateful谢谢您", "谢谢您", "happiness", "bare_emotion_label"),
    ("sadness有人打我", "有人打我", "sadness", "bare_emotion_label"),
    ("(笑)你好", "你好", None, "unknown_emotion_label"),
    ("(中立)(其他)都可以看看", "都可以看看", "neutral", "double_emotion_label"),
    ("(兴奋) (在动物园)哇！", "(在动物园)哇！", "excitement", None),
    ("你那么着急找我干嘛", "你那么着急找我干嘛", None, "unlabeled"),
    ("happy birthday to you", "happy birthday to you", None, "unlabeled"),
    ("(中立)", "", "neutral", None),
])
def test_emotion_prefix_variants(content, text, emotion, issue):
    got_text, got_emotion, got_issue, _raw = parse_emotion_prefix(content)
    assert (got_text, got_emotion, got_issue) == (text, emotion, issue)


def test_alias_table_covers_canonical_and_strays():
    for en, zh in schema.EMOTION_ZH.items():
        assert EMOTION_ALIASES[zh] == en
        assert EMOTION_ALIASES[en] == en
    for zh, en in {"激动": "excitement", "生气": "anger", "开心": "happiness", "高兴": "happiness",
                   "难过": "sadness", "伤心": "sadness", "害怕": "fear", "惊喜": "surprise",
                   "grateful": "happiness"}.items():
        assert EMOTION_ALIASES[zh] == en
    assert set(EMOTION_ALIASES.values()) <= set(schema.EMOTIONS)


def test_script_label_defects_have_lines(tmp_path: Path):
    make_character(tmp_path, files={"桃子_scriopt.jsonl": jl([
        {"role": "其他", "content": "(中立)你好"},
        {"role": "桃子", "content": "(笑)哈哈"},
        {"role": "桃子", "content": "没有标签"},
        {"role": "桃子", "content": "（激动）太好了"},
        {"role": "桃子", "content": "(中立)"},
        {"role": "桃子", "content": "(悲伤) 再见"},
    ])})
    ds, defects = import_roleinstruct_v1(tmp_path)
    k = kinds(defects)
    assert [d.line for d in k["unknown_emotion_label"]] == [2]
    assert [d.line for d in k["unlabeled"]] == [3]
    assert [d.line for d in k["stray_emotion_label"]] == [4]
    assert [d.line for d in k["empty_text"]] == [5]
    assert [(u.turn, u.text, u.emotion) for u in ds.script] == [
        (1, "你好", "neutral"), (2, "哈哈", None), (3, "没有标签", None), (4, "太好了", "excitement"), (5, "再见", "sadness")]
    assert str(k["unknown_emotion_label"][0]).endswith(":2: unknown emotion label '笑'; stripped, emotion left null")


def test_unknown_label_through_cli_gives_null_and_valid_output(tmp_path: Path):
    src = tmp_path / "src"
    make_character(src, files={"桃子_scriopt.jsonl": jl([{"role": "桃子", "content": "(迷茫)我在哪"}])})
    out = tmp_path / "out"
    r = run_cli("data", "import", "roleinstruct-v1", src, "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"{src / '桃子' / '桃子_scriopt.jsonl'}:1: unknown emotion label '迷茫'" in r.stderr
    assert read_jsonl(out / "script.jsonl")[0]["emotion"] is None
    assert run_cli("data", "validate", out).returncode == 0
    st = json.loads(run_cli("data", "stats", out, "--json").stdout)
    assert st["emotions"]["unlabeled"] == 1


def test_missing_underscore_and_double_dot_and_json_script(tmp_path: Path):
    d = make_character(tmp_path, drop=("桃子_general_rp1.jsonl", "桃子_specific_QA.json", "桃子_scriopt.jsonl"), files={
        "桃子general_rp1.jsonl": jl([{"role": "桃子", "instruction": "写一首诗。", "generated": "春天来了"}]),
        "桃子_specific_QA..json": json.dumps([{"instruction": "q", "generated": "a"}]),
        "桃子_scriopt.json": json.dumps([{"role": "桃子", "content": "(中立)你好"}], ensure_ascii=False, indent=4),
    })
    ds, defects = import_roleinstruct_v1(tmp_path)
    names = {Path(x.file).name: x for x in kinds(defects)["file_name"]}
    assert set(names) == {"桃子general_rp1.jsonl", "桃子_specific_QA..json"}
    assert "no underscore" in names["桃子general_rp1.jsonl"].message
    assert names["桃子general_rp1.jsonl"].line is None
    assert str(names["桃子general_rp1.jsonl"]) == f"{d / '桃子general_rp1.jsonl'}: " + names["桃子general_rp1.jsonl"].message
    gen = {s.instruction: s.references for s in ds.samples if s.kind == "general"}
    assert gen["写一首诗。"] == ["春天来了", "花开了"]
    assert [s.instruction for s in ds.samples if s.kind == "specific"] == ["q"]
    assert [u.text for u in ds.script] == ["你好"]


def test_rp3_5_json_list_with_list_answers(tmp_path: Path):
    make_character(tmp_path, files={"桃子_general_rp3-5.json": json.dumps([
        {"role": "桃子", "instruction": "写一首诗。", "generated": ["秋天来了", ["冬天来了", "花开了"], ""]},
        {"role": "桃子", "instruction": "1+1等于几？", "generated": "二"},
    ], ensure_ascii=False, indent=2)})
    ds, defects = import_roleinstruct_v1(tmp_path)
    gen = {s.instruction: s.references for s in ds.samples if s.kind == "general"}
    # rp1, rp2, then rp3-5's answers in order; "花开了" de-duplicated; the empty one dropped.
    assert gen["写一首诗。"] == ["春天来了", "花开了", "秋天来了", "冬天来了"]
    assert gen["1+1等于几？"] == ["等于2", "是2", "二"]
    k = kinds(defects)
    assert any("rp3-rp5" in x.message for x in k["file_name"])
    assert [(Path(x.file).name, x.line) for x in k["empty_answer"]] == [("桃子_general_rp3-5.json", 2)]


def test_rp_files_aligned_by_instruction_not_line(tmp_path: Path):
    rows = lambda pairs: jl([{"role": "桃子", "instruction": i, "generated": g} for i, g in pairs])
    make_character(tmp_path, files={
        "桃子_general_rp1.jsonl": rows([("A", "a1"), ("B", "b1"), ("C", "c1")]),
        "桃子_general_rp2.jsonl": rows([("C\n", "c2"), ("A", "a2")]),                  # other order, B missing
        "桃子_general_rp3.jsonl": rows([("A", "a3"), ("B", ""), ("A", "a3-bis"), ("C", "c1")]),
        "桃子_general_rp4.jsonl": rows([("A", "a4"), ("B", "b4"), ("C", "c4")]),
        "桃子_general_rp5.jsonl": rows([("A", "a5"), ("B", "b5"), ("C", "c5")]),
        "桃子_general_rp6.jsonl": rows([("A", "a6"), ("B", "b6"), ("C", "c6")]),
    })
    ds, defects = import_roleinstruct_v1(tmp_path)
    gen = {s.instruction: s.references for s in ds.samples if s.kind == "general"}
    assert gen == {
        "A": ["a1", "a2", "a3", "a4", "a5"],         # 6 distinct + a spare: first five, rp order
        "B": ["b1", "b4", "b5", "b6"],
        "C": ["c1", "c2", "c4", "c5", "c6"],         # rp3's "c1" de-duplicated
    }
    k = kinds(defects)
    assert [(Path(x.file).name, x.line) for x in k["missing_instructions"]] == [("桃子_general_rp2.jsonl", None)]
    assert [(Path(x.file).name, x.line) for x in k["duplicate_instruction"]] == [("桃子_general_rp3.jsonl", 3)]
    assert [(Path(x.file).name, x.line) for x in k["empty_answer"]] == [("桃子_general_rp3.jsonl", 2)]
    assert [(Path(x.file).name, x.line) for x in k["extra_references"]] == [("桃子_general_rp1.jsonl", 1)]
    assert sum(1 for s in ds.samples if s.kind == "general") == 3


def test_profile_parsing(tmp_path: Path):
    desc = "名字：何塞, 年龄:34岁；性格特点：热情、坚定，同时也关心社区；背景: 出生于社区;爱好：足球、烹饪，特长：组织协调\n"
    make_character(tmp_path, name="何赛", files={"何赛_desc.txt": desc})
    ds, defects = import_roleinstruct_v1(tmp_path)
    prof = ds.characters["何赛"].profile
    assert list(prof) == ["名字", "年龄", "性格特点", "背景", "爱好", "特长"]
    assert prof["名字"] == "何塞" and prof["年龄"] == "34岁"
    assert prof["性格特点"] == "热情、坚定，同时也关心社区"
    assert prof["背景"] == "出生于社区"
    mism = kinds(defects)["name_mismatch"]
    assert len(mism) == 1 and mism[0].line == 1 and "'何塞'" in mism[0].message


def test_profile_without_key_at_start(tmp_path: Path):
    make_character(tmp_path, files={"桃子_desc.txt": "一个女大学生；名字：桃子；年龄：20岁"})
    ds, defects = import_roleinstruct_v1(tmp_path)
    assert ds.characters["桃子"].profile == {"描述": "一个女大学生", "名字": "桃子", "年龄": "20岁"}
    assert [x.kind for x in defects] == ["profile_format"]


def test_unreadable_or_missing_part_imports_the_rest(tmp_path: Path):
    make_character(tmp_path, name="桃子", files={"桃子_specific_QA.json": '[{"instruction": "a", "generated": ]'})
    make_character(tmp_path, name="刘星")
    make_character(tmp_path, name="方圆", drop=("方圆_scriopt.jsonl",))
    ds, defects = import_roleinstruct_v1(tmp_path)
    assert list(ds.characters) == ["刘星", "方圆", "桃子"]  # a missing part no longer drops the character
    assert {u.character for u in ds.script} == {"刘星", "桃子"}
    assert {s.kind for s in ds.samples if s.character == "桃子"} == {"general"}
    assert {s.kind for s in ds.samples if s.character == "方圆"} == {"specific", "general"}
    k = kinds(defects)
    assert [(Path(x.file).name, x.line) for x in k["unreadable_file"]] == [("桃子_specific_QA.json", 1)]
    partial = {Path(x.file).name: x.message for x in k["character_partial"]}
    assert set(partial) == {"桃子", "方圆"} and "character_skipped" not in k
    assert "unreadable specific QA" in partial["桃子"] and "missing script" in partial["方圆"]


def test_malformed_jsonl_line_skipped_with_line(tmp_path: Path):
    make_character(tmp_path, files={"桃子_scriopt.jsonl": jl([{"role": "桃子", "content": "(中立)一"}]) + '{"role": "桃子", "content": \n'
                                    + jl([{"role": "桃子", "content": "(中立)二"}])})
    ds, defects = import_roleinstruct_v1(tmp_path)
    assert [(x.kind, x.line) for x in defects] == [("malformed_json", 2)]
    assert [(u.turn, u.text) for u in ds.script] == [(1, "一"), (2, "二")]


def test_script_name_mismatch(tmp_path: Path):
    make_character(tmp_path, name="董文洁", files={"董文洁_scriopt.jsonl": jl([
        {"role": "童文洁", "content": "(中立)真巧"}, {"role": "刘静", "content": "(中立)是你呀"}])})
    ds, defects = import_roleinstruct_v1(tmp_path)
    assert [u.speaker for u in ds.script] == ["童文洁", "刘静"]
    assert {u.character for u in ds.script} == {"董文洁"}
    assert [x.kind for x in defects] == ["name_mismatch"] and "'童文洁'" in defects[0].message


def test_cli_import_synthetic_report_and_determinism(tmp_path: Path):
    src = tmp_path / "src"
    make_character(src, files={"桃子_general_rp2.jsonl": '{"role": "桃子", "instruction": "写一首诗。", "generated": "\\用"}\n'
                               + jl([{"role": "桃子", "instruction": "1+1等于几？", "generated": "是2"}])})
    out1, out2, rep = tmp_path / "o1", tmp_path / "o2", tmp_path / "rep.txt"
    r1 = run_cli("data", "import", "roleinstruct-v1", src, "--out", out1, "--report", rep)
    r2 = run_cli("data", "import", "roleinstruct-v1", src, "--out", out2)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr
    assert f"{src / '桃子' / '桃子_general_rp2.jsonl'}:1: invalid JSON escape" in r1.stderr
    assert "1 defects: invalid_escape 1" in r1.stdout
    assert rep.read_text(encoding="utf-8").splitlines()[0] == r1.stderr.splitlines()[0]
    for name in schema.FILES:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
    # importing over an existing output needs --force, and then replaces it
    r3 = run_cli("data", "import", "roleinstruct-v1", src, "--out", out1)
    assert r3.returncode == 2 and "--force" in r3.stderr
    r3 = run_cli("data", "import", "roleinstruct-v1", src, "--out", out1, "--force")
    assert r3.returncode == 0, r3.stderr
    assert sorted(p.name for p in out1.iterdir()) == sorted([*schema.FILES, OUTPUT_MARKER])


def test_failing_import_leaves_no_out_dir(tmp_path: Path):
    out = tmp_path / "out"
    r = run_cli("data", "import", "roleinstruct-v1", tmp_path / "does-not-exist", "--out", out)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not out.exists()
    # every character unusable: defects printed, then one error line; still nothing written
    src = tmp_path / "src"
    make_character(src, drop=("桃子_scriopt.jsonl", "桃子_specific_QA.json", "桃子_general_rp1.jsonl",
                              "桃子_general_rp2.jsonl"))
    r = run_cli("data", "import", "roleinstruct-v1", src, "--out", out)
    assert r.returncode == 2
    assert "character '桃子' skipped: no script and no Q&A" in r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: ")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_import_function_errors(tmp_path: Path):
    with pytest.raises(DataError, match="not a directory"):
        import_roleinstruct_v1(tmp_path / "missing")
    with pytest.raises(DataError, match="no character folders"):
        import_roleinstruct_v1(tmp_path)


def test_dataset_folder_with_role_subfolder(tmp_path: Path):
    make_character(tmp_path / "role")
    ds, _ = import_roleinstruct_v1(tmp_path)
    assert list(ds.characters) == ["桃子"]


# ======================================================================================
# `rolecraft data validate` on bad canonical data: non-zero exit, one line naming file:line
# ======================================================================================


def _valid_dataset(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_character(src)
    ds, _ = import_roleinstruct_v1(src)
    return schema.save(ds, tmp_path / "ds")


def _edit_line(path: Path, lineno: int, fn) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set(field, value):
    def fn(line):
        obj = json.loads(line)
        obj[field] = value
        return json.dumps(obj, ensure_ascii=False)
    return fn


def _drop(field):
    def fn(line):
        obj = json.loads(line)
        del obj[field]
        return json.dumps(obj, ensure_ascii=False)
    return fn


@pytest.mark.parametrize("file, lineno, edit, needle", [
    ("samples.jsonl", 2, lambda line: line[:-5], "malformed JSON"),
    ("script.jsonl", 1, _drop("speaker"), "missing required field 'speaker'"),
    ("samples.jsonl", 1, _drop("instruction"), "missing required field 'instruction'"),
    ("script.jsonl", 2, _set("emotion", "joy"), "unknown emotion label 'joy'"),
    ("samples.jsonl", 3, _set("references", [""]), "references[0] is empty"),
    ("samples.jsonl", 2, _set("references", []), "'references' is empty"),
    ("samples.jsonl", 1, _set("character", "刘星"), "unknown character '刘星'"),
    ("script.jsonl", 2, _set("character", "刘星"), "unknown character '刘星'"),
])
def test_validate_rejects_bad_input(tmp_path: Path, file, lineno, edit, needle):
    ds = _valid_dataset(tmp_path)
    assert run_cli("data", "validate", ds).returncode == 0
    _edit_line(ds / file, lineno, edit)
    r = run_cli("data", "validate", ds)
    assert r.returncode != 0
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {ds / file}:{lineno}: ")
    assert needle in r.stderr
    # stats refuses the same data with the same one line (exit 2)
    s = run_cli("data", "stats", ds)
    assert s.returncode == 2 and s.stderr == r.stderr
