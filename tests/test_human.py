"""`rolecraft human export/import`: blinded sheets out, filled sheets in, through the real CLI;
sheets from train.py and evaluate.py runs side by side; bad input (the statistics: tests/test_stats.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rolecraft.evaluation import human
from rolecraft.evaluation.human import sample_keys
from rolecraft.fileio import OUTPUT_MARKER
from rolecraft.stats import krippendorff_alpha

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

MODELS = ("zeta_base", "omega_lora", "kappa_gpt")  # names that cannot occur in the synthetic text
CHARS = {"桃子": {"名字": "桃子", "性格特点": "内向、乐观"}, "刘星": "名字：刘星\n年龄：12岁", "夏雨": "名字：夏雨"}


def run_cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=120)


def one_error(r: subprocess.CompletedProcess) -> str:
    """The single `error: ...` line of a failed command (exit 2, no traceback)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def answer_text(model_idx: int, key: str) -> str:
    return f"回答{model_idx}-{key}：" + "好的" * (model_idx + 1)


def make_run(root: Path, model_idx: int, keys_per_char: int = 5, profiles: bool = True, drop: int = 0) -> Path:
    """An evaluation run directory as evaluate.py writes it: samples.jsonl (+ characters.json)."""
    root.mkdir(parents=True)
    rows = []
    for c in CHARS:
        for i in range(keys_per_char):
            key = f"{c}-{i}"
            rows.append({"key": key, "character": c, "kind": "specific" if i % 2 else "general",
                         "question": f"{c}，问题{i}是什么？", "references": ["参考"],
                         "prediction": answer_text(model_idx, key), "rouge_l": 0.5})
    rows.append({"key": "raw-0", "character": None, "kind": "raw", "question": "1+1=?", "references": ["2"],
                 "prediction": "2"})
    rows = rows[drop:]
    (root / "samples.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    if profiles:
        (root / "characters.json").write_text(json.dumps(CHARS, ensure_ascii=False), "utf-8")
    return root


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    return {m: make_run(tmp_path / f"run-{i}", i) for i, m in enumerate(MODELS)}


def export(runs: dict[str, Path], out: Path, *extra) -> subprocess.CompletedProcess:
    args = ["human", "export", *(a for m, p in runs.items() for a in ("--answers", f"{m}={p}")), "--out", out, *extra]
    return run_cli(*args)


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def fill(sheet: Path, key: dict, score_of, out: Path) -> Path:
    """Fill a sheet as an annotator would: score_of(model, item_id, criterion) -> str."""
    header, rows = read_rows(sheet)
    for r in rows:
        model = key["answers"][r[4]]["model"]
        for j, c in enumerate(human.CRITERIA, start=6):
            r[j] = score_of(model, r[0], c)
    write_rows(out, header, rows)
    return out


# ---- export -> fill -> import ------------------------------------------------------------------


def test_round_trip_through_the_cli(runs, tmp_path):
    out = tmp_path / "sheets"
    r = export(runs, out, "--n", 6, "--annotators", 3, "--seed", 7)
    assert r.returncode == 0, r.stderr
    assert "3 sheet(s) x 6 questions x 3 answers" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "README.txt", "key.json", "sheet_01.csv",
                                                      "sheet_02.csv", "sheet_03.csv"]
    raw = (out / "sheet_01.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese text as UTF-8
    header, rows = read_rows(out / "sheet_01.csv")
    assert header == ["item_id", "question", "character", "profile", "answer_id", "answer", "ce", "consistency", "ed"]
    assert len(rows) == 6 * 3 and all(r[6:] == ["", "", ""] for r in rows)
    assert {r[2] for r in rows} == set(CHARS)  # 6 questions over 3 characters: 2 each
    assert all(sum(1 for r in rows if r[2] == c) == 6 for c in CHARS)
    prof = next(r[3] for r in rows if r[2] == "桃子")
    assert prof == "名字：桃子\n性格特点：内向、乐观"  # a {field: value} profile, one field a line
    readme = (out / "README.txt").read_text("utf-8")
    for word in ("Communication Effectiveness", "Consistency", "Expressive Diversity", "5 ", "1 "):
        assert word in readme

    key = json.loads((out / "key.json").read_text("utf-8"))
    assert key["settings"]["seed"] == 7 and key["settings"]["n"] == 6 and key["models"] == list(MODELS)
    # annotators: s1 gives each model a fixed score, s2 one more (capped), s3 leaves ED of one answer empty
    base = {"zeta_base": 2, "omega_lora": 4, "kappa_gpt": 3}
    filled = [
        fill(out / "sheet_01.csv", key, lambda m, i, c: str(base[m]), tmp_path / "ann_a.csv"),
        fill(out / "sheet_02.csv", key, lambda m, i, c: str(min(5, base[m] + 1)), tmp_path / "ann_b.csv"),
        fill(out / "sheet_03.csv", key, lambda m, i, c: "" if (m, i, c) == ("kappa_gpt", "Q001", "ed")
             else str(base[m]), tmp_path / "ann_c.csv"),
    ]
    res_path = tmp_path / "results.json"
    r = run_cli("human", "import", *filled, "--key", out / "key.json", "--out", res_path)
    assert r.returncode == 0, r.stderr
    for m in MODELS:
        assert m in r.stdout
    assert "Krippendorff" in r.stdout and f"results written to {res_path}" in r.stdout
    res = json.loads(res_path.read_text("utf-8"))
    for k in ("models", "annotators", "ci", "scores", "agreement", "coverage", "flat"):
        assert k in res
    assert res["annotators"] == ["ann_a", "ann_b", "ann_c"]
    lora = res["scores"]["omega_lora"]["ce"]
    assert lora["n"] == 18 and lora["n_items"] == 6 and lora["mean"] == pytest.approx((4 + 5 + 4) / 3)
    # each item has the same ratings, so the item bootstrap has no spread
    assert lora["ci_low"] == pytest.approx(lora["mean"]) and lora["ci_high"] == pytest.approx(lora["mean"])
    gpt_ed = res["scores"]["kappa_gpt"]["ed"]
    assert gpt_ed["n"] == 17 and gpt_ed["not_rated"] == 1 and gpt_ed["mean"] == pytest.approx((6 * 4 + 11 * 3) / 17)
    assert gpt_ed["ci_low"] < gpt_ed["mean"] < gpt_ed["ci_high"]  # Q001 has fewer 3s: items now differ
    assert res["flat"]["human/ce/omega_lora/mean"] == lora["mean"]
    assert res["flat"]["human/ed/kappa_gpt/n"] == 17
    assert res["ci"]["resamples"] == 10000 and res["ci"]["level"] == 0.95
    assert res["coverage"]["ann_c"]["rated"]["ed"] == 17
    # agreement on CE: units = 18 answers, values per unit (a, b, c): base 2/3/2, lora 4/5/4, gpt 3/4/3
    expected_alpha, _ = krippendorff_alpha([[2, 3, 2]] * 6 + [[4, 5, 4]] * 6 + [[3, 4, 3]] * 6)
    assert res["agreement"]["ce"]["alpha"] == pytest.approx(expected_alpha)
    assert 0 < expected_alpha < 1 and res["agreement"]["ce"]["metric"] == "ordinal"
    assert res["flat"]["human/alpha/ce"] == pytest.approx(expected_alpha)

    # same command, same numbers (seeded bootstrap); default --out is results.json beside the key
    r2 = run_cli("human", "import", *filled, "--key", out / "key.json")
    assert r2.returncode == 0, r2.stderr
    assert json.loads((out / "results.json").read_text("utf-8"))["scores"] == res["scores"]


def test_sheets_are_blind_and_the_key_maps_back(runs, tmp_path):
    out = tmp_path / "sheets"
    r = export(runs, out, "--n", 12, "--annotators", 3)
    assert r.returncode == 0, r.stderr
    key = json.loads((out / "key.json").read_text("utf-8"))
    sheets = sorted(out.glob("sheet_*.csv"))
    for path in [*sheets, out / "README.txt"]:
        text = path.read_text("utf-8-sig")
        for m in MODELS:
            assert m not in text, f"{m} in {path.name}"
    orders: dict[str, dict[str, list[str]]] = {}
    for sheet in sheets:
        _, rows = read_rows(sheet)
        orders[sheet.stem] = {}
        for r in rows:
            item_id, aid, answer = r[0], r[4], r[5]
            # opaque ids: letters/digits, not a model name, not a position
            assert re.fullmatch(r"[A-Z][0-9a-z]{4}", aid) and aid not in ("A1", "B2", "C3")
            model = key["answers"][aid]["model"]
            assert key["answers"][aid]["item_id"] == item_id
            bench_key = key["items"][item_id]["key"]
            assert answer == answer_text(MODELS.index(model), bench_key)  # the key maps back to the right model
            orders[sheet.stem].setdefault(item_id, []).append(model)
    # the position of a model differs across questions and across annotators
    s1 = orders["sheet_01"]
    assert len({tuple(o) for o in s1.values()}) > 1
    for item_id in s1:
        assert s1[item_id] != orders["sheet_02"][item_id] != orders["sheet_03"][item_id]
    assert {o[0] for o in s1.values()} == set(MODELS)  # every model is shown first somewhere
    # every answer id is used once per sheet and is the same answer on every sheet
    ids = [sorted(r[4] for r in read_rows(s)[1]) for s in sheets]
    assert ids[0] == ids[1] == ids[2] == sorted(key["answers"]) and len(set(ids[0])) == 12 * 3


def test_export_is_deterministic_and_refuses_to_overwrite(runs, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert export(runs, a, "--n", 5, "--seed", 3).returncode == 0
    assert export(runs, b, "--n", 5, "--seed", 3).returncode == 0
    assert export(runs, c, "--n", 5, "--seed", 4).returncode == 0
    assert (a / "sheet_02.csv").read_bytes() == (b / "sheet_02.csv").read_bytes()
    assert (a / "sheet_02.csv").read_bytes() != (c / "sheet_02.csv").read_bytes()
    err = one_error(export(runs, a, "--n", 5))
    assert "is not empty" in err and "--force" in err
    assert (a / "sheet_02.csv").read_bytes() == (b / "sheet_02.csv").read_bytes()  # untouched
    r = export(runs, a, "--n", 4, "--annotators", 2, "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in a.iterdir()) == [OUTPUT_MARKER, "README.txt", "key.json", "sheet_01.csv", "sheet_02.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_partial_join_kinds_and_plain_predictions_file(tmp_path):
    """A run missing questions joins on the rest; a training run's predictions.jsonl (id + rendered
    ChatML prompt, no question, no profiles) works, with --profiles for the profile column."""
    a = make_run(tmp_path / "a", 0, drop=3)
    rows = []
    for c in CHARS:
        for i in range(5):
            prompt = (f"<|im_start|>system\n你是{c}。<|im_end|>\n<|im_start|>user\n{c}，问题{i}是什么？<|im_end|>\n"
                      f"<|im_start|>assistant\n")
            rows.append({"id": f"{c}-{i}", "character": c, "kind": "specific" if i % 2 else "general",
                         "prompt": prompt, "prediction": answer_text(1, f"{c}-{i}"), "references": ["x"]})
    preds = tmp_path / "b" / "predictions.jsonl"
    preds.parent.mkdir()
    preds.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    prof = tmp_path / "profiles.json"
    prof.write_text(json.dumps({"刘星": "PROFILE-LX"}, ensure_ascii=False), "utf-8")
    out = tmp_path / "out"
    r = run_cli("human", "export", "--answers", f"m1={a}", "--answers", f"m2={preds}", "--out", out, "--n", 100,
                "--kinds", "specific", "--profiles", prof, "--annotators", 2)
    assert r.returncode == 0, r.stderr
    key = json.loads((out / "key.json").read_text("utf-8"))
    # 3 characters x 2 specific questions (i = 1, 3), minus 桃子-1 and 桃子-3 dropped from run a (drop=3: 桃子-0..2)
    assert sorted(i["key"] for i in key["items"].values()) == ["刘星-1", "刘星-3", "夏雨-1", "夏雨-3", "桃子-3"]
    assert "only 5 questions" in r.stderr and "m2: 1 question(s) not answered by every model" in r.stderr
    _, rows_out = read_rows(out / "sheet_01.csv")
    assert {r[1] for r in rows_out if r[0] == "Q001"} <= {f"{c}，问题{i}是什么？" for c in CHARS for i in (1, 3)}
    assert {r[3] for r in rows_out if r[2] == "刘星"} == {"PROFILE-LX"}  # --profiles wins over characters.json
    assert {r[3] for r in rows_out if r[2] == "夏雨"} == {"名字：夏雨"}


def test_sample_keys_is_stratified_and_seeded():
    keys = [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)] + ["c0"]
    char = {k: k[0] for k in keys}
    got = sample_keys(keys, char, 7, seed=1)
    counts = {c: sum(1 for k in got if k[0] == c) for c in "abc"}
    assert counts == {"a": 3, "b": 3, "c": 1}  # c has one question; a and b share the rest evenly
    assert len(set(got)) == 7
    assert got == sample_keys(list(reversed(keys)), char, 7, seed=1)  # input order does not matter
    assert got != sample_keys(keys, char, 7, seed=2)
    assert sorted(sample_keys(keys, char, 100, seed=0)) == sorted(keys)


# ---- bad input ------------------------------------------------------------------------------------


@pytest.fixture()
def exported(runs, tmp_path) -> tuple[Path, dict]:
    out = tmp_path / "sheets"
    r = export(runs, out, "--n", 3, "--annotators", 2)
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "key.json").read_text("utf-8"))


def _filled_with(exported, tmp_path, row: int, col: str, value: str) -> Path:
    out, key = exported
    path = fill(out / "sheet_01.csv", key, lambda m, i, c: "3", tmp_path / "s1.csv")
    header, rows = read_rows(path)
    rows[row][header.index(col)] = value
    write_rows(path, header, rows)
    return path


def _physical_line(path: Path, row: int) -> int:
    """The first physical line of data row ``row`` (0-based) in a CSV whose profile cells span lines."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        start = reader.line_num + 1
        for i, _ in enumerate(reader):
            if i == row:
                return start
            start = reader.line_num + 1
    raise AssertionError


@pytest.mark.parametrize("col,value,expected", [
    ("ce", "7", r"column ce: '7' is not a score; enter a whole number 1-5"),
    ("ed", "3.5", r"column ed: '3.5' is not a score"),
    ("consistency", "good", r"column consistency: 'good' is not a score"),
    ("answer_id", "Zzzzz", r"column answer_id: unknown answer id 'Zzzzz' \(not in the key\)"),
    ("item_id", "Q999", r"column item_id: 'Q999', but answer \w+ belongs to Q00\d"),
])
def test_bad_cells_name_file_line_column_and_value(exported, tmp_path, col, value, expected):
    path = _filled_with(exported, tmp_path, 4, col, value)
    r = run_cli("human", "import", path, "--key", exported[0] / "key.json", "--out", tmp_path / "res.json")
    err = one_error(r)
    line = _physical_line(path, 4)
    assert re.search(rf"{re.escape(str(path))}:{line}: row 6, {expected}", err), err
    assert not (tmp_path / "res.json").exists()


def test_full_width_digits_and_empty_cells_are_accepted(exported, tmp_path):
    path = _filled_with(exported, tmp_path, 0, "ce", "４")
    header, rows = read_rows(path)
    rows[1][header.index("ed")] = " "
    write_rows(path, header, rows)
    r = run_cli("human", "import", path, "--key", exported[0] / "key.json", "--out", tmp_path / "res.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "res.json").read_text("utf-8"))
    assert sum(s["ed"]["not_rated"] for s in res["scores"].values()) == 1
    assert res["coverage"]["s1"]["rated"] == {"ce": 9, "consistency": 9, "ed": 8}
    assert res["agreement"]["ce"]["alpha"] is None and "2 or more" in res["agreement"]["ce"]["reason"]


def test_single_value_everywhere_gives_null_alpha_with_reason(exported, tmp_path):
    out, key = exported
    sheets = [fill(out / f"sheet_0{i}.csv", key, lambda m, i_, c: "4", tmp_path / f"s{i}.csv") for i in (1, 2)]
    r = run_cli("human", "import", *sheets, "--key", out / "key.json", "--out", tmp_path / "res.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "res.json").read_text("utf-8"))
    assert res["agreement"]["ce"]["alpha"] is None and "every rating is 4" in res["agreement"]["ce"]["reason"]
    assert res["flat"]["human/alpha/ce"] is None
    assert "CE n/a (every rating is 4" in r.stdout


def test_missing_key_file(exported, tmp_path):
    err = one_error(run_cli("human", "import", exported[0] / "sheet_01.csv", "--key", tmp_path / "nope" / "key.json"))
    assert "nope/key.json: no such file; pass the key.json written by `rolecraft human export`" in err


def test_single_model_and_unparseable_answers(runs, tmp_path):
    err = one_error(run_cli("human", "export", "--answers", f"only={runs['zeta_base']}", "--out", tmp_path / "o"))
    assert "at least 2 models" in err and "got 1 (only)" in err
    err = one_error(run_cli("human", "export", "--answers", str(runs["zeta_base"]), "--answers", "b=x",
                            "--out", tmp_path / "o"))
    assert "expected NAME=PATH" in err
    err = one_error(export({"a": runs["zeta_base"], "b": tmp_path / "nowhere"}, tmp_path / "o"))
    assert "--answers b=" in err and "no such file or directory" in err
    assert not (tmp_path / "o").exists()


def test_nothing_joins_shows_counts_and_keys(runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "samples.jsonl").write_text("".join(
        json.dumps({"key": f"x{i}", "character": "桃子", "kind": "specific", "question": "q", "references": [],
                    "prediction": "p"}) + "\n" for i in range(4)), "utf-8")
    err = one_error(export({"a": runs["zeta_base"], "b": other}, tmp_path / "o"))
    assert "no question of kind general,specific was answered by every model" in err
    assert "a has 15 (e.g. 刘星-0, 刘星-1, 刘星-2)" in err and "b has 4 (e.g. x0, x1, x2)" in err


def test_row_without_a_question_names_its_line(runs, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": "k", "character": "桃子", "kind": "specific", "prediction": "p"}) + "\n"
                   + json.dumps({"key": "k2", "character": "桃子", "kind": "specific", "prediction": "p",
                                 "prompt": "no template here"}) + "\n", "utf-8")
    err = one_error(export({"a": runs["zeta_base"], "b": bad}, tmp_path / "o"))
    assert f"{bad}:1: no question" in err
    bad.write_text(bad.read_text("utf-8").splitlines()[1] + "\n", "utf-8")
    err = one_error(export({"a": runs["zeta_base"], "b": bad}, tmp_path / "o"))
    assert f"{bad}:1: no question" in err and "no user turn found in 'prompt'" in err


def test_sheet_from_another_export_and_duplicate_annotator(runs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert export(runs, a, "--n", 3, "--seed", 1).returncode == 0
    assert export(runs, b, "--n", 3, "--seed", 2).returncode == 0
    err = one_error(run_cli("human", "import", b / "sheet_01.csv", "--key", a / "key.json"))
    assert f"{b / 'sheet_01.csv'}:2: row 2, column answer_id: unknown answer id" in err
    err = one_error(run_cli("human", "import", a / "sheet_01.csv", b / "sheet_01.csv", "--key", a / "key.json"))
    assert "annotator id 'sheet_01'" in err and "own file name" in err


def test_data_commands_still_there():
    r = run_cli("--help")
    assert r.returncode == 0 and "data" in r.stdout and "human" in r.stdout


def test_excel_resaved_sheet_gbk_semicolons_and_formula_cells(tmp_path):
    """Excel on a Chinese system may save "CSV" as GBK without BOM, with ';' in some locales; an
    answer starting with '-' or '=' is written with a leading "'" so it is not read as a formula."""
    runs = {}
    for i, m in enumerate(("m1", "m2")):
        d = tmp_path / m
        d.mkdir()
        (d / "samples.jsonl").write_text("".join(json.dumps(
            {"key": f"k{j}", "character": "桃子", "kind": "specific", "question": f"问题{j}", "references": [],
             "prediction": ["-列表项", "=1+1", "普通"][j] + str(i)}, ensure_ascii=False) + "\n" for j in range(3)), "utf-8")
        runs[m] = d
    out = tmp_path / "out"
    assert export(runs, out, "--annotators", 1).returncode == 0
    header, rows = read_rows(out / "sheet_01.csv")
    answers = sorted(r[5] for r in rows)
    assert answers == sorted(["'-列表项0", "'-列表项1", "'=1+10", "'=1+11", "普通0", "普通1"])
    for r in rows:
        r[6:] = ["5", "4", "3"]
    text = "\r\n".join(";".join(f'"{c}"' if ("\n" in c or ";" in c) else c for c in r) for r in [header, *rows])
    resaved = tmp_path / "anno.csv"
    resaved.write_bytes(text.encode("gb18030"))
    r = run_cli("human", "import", resaved, "--key", out / "key.json", "--out", tmp_path / "res.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "res.json").read_text("utf-8"))
    assert res["scores"]["m2"]["ce"]["mean"] == 5 and res["scores"]["m1"]["ed"]["n"] == 3


def test_bad_export_options(runs, tmp_path):
    err = one_error(export(runs, tmp_path / "o", "--kinds", "general,chat"))
    assert "--kinds general,chat: unknown kind chat" in err
    err = one_error(export(runs, tmp_path / "o", "--n", 0))
    assert "--n 0" in err
    # --out must not be (or contain) a run directory: --force would delete it
    err = one_error(export(runs, runs["zeta_base"], "--force"))
    assert "holds the answers of zeta_base" in err
    assert (runs["zeta_base"] / "samples.jsonl").is_file()


# ---- any run directory: train.py and evaluate.py runs side by side ---------------------------------


def make_train_run(root: Path, data_root: Path | None, same_keys: bool = True) -> Path:
    """A train.py run directory in the older layout: config.yaml + predictions.jsonl rows with `id`,
    `question` and the rendered `prompt`; no characters.json (profiles come from data.root)."""
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(f"seed: 1\ndata:\n  root: {data_root or '/nonexistent/dataset'}\n", "utf-8")
    rows = []
    for c in CHARS:
        for i in range(5):
            q = f"{c}，问题{i}是什么？"
            rows.append({"id": f"{c}-{i}" if same_keys else f"sample-{c}-{i}", "character": c,
                         "kind": "specific" if i % 2 else "general", "question": q,
                         "prompt": f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
                         "prediction": answer_text(2, f"{c}-{i}"), "references": ["x"], "rouge_l": 0.1})
    (root / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return root


def make_dataset(root: Path) -> Path:
    """A canonical dataset holding the three characters (profiles for the train run)."""
    from rolecraft.data import schema

    chars = {c: schema.Character(c, {"名字": c, "来源": f"DATASET-{c}"}) for c in CHARS}
    samples = [schema.Sample(f"s-{c}", "specific", c, "问题？", ["答"], "test") for c in CHARS]
    schema.save(schema.RoleInstruct(None, {"name": "t"}, chars, [], samples), root)
    return root


@pytest.mark.parametrize("same_keys", [True, False], ids=["joined-on-key", "joined-on-character-and-question"])
def test_export_from_a_train_run_and_an_eval_run_side_by_side(tmp_path, same_keys):
    train = make_train_run(tmp_path / "train-run", make_dataset(tmp_path / "ds"), same_keys=same_keys)
    ev = make_run(tmp_path / "eval-run", 0, profiles=False)
    out = tmp_path / "sheets"
    r = run_cli("human", "export", "--answers", f"lora={train}", "--answers", f"base={ev}", "--out", out,
                "--n", 100, "--annotators", 2)
    assert r.returncode == 0, r.stderr
    assert "15 questions answered by every model" in r.stdout  # 3 characters x 5 general/specific
    key = json.loads((out / "key.json").read_text("utf-8"))
    assert key["models"] == ["lora", "base"] and len(key["items"]) == 15
    # the item key is the first run's: the train run's ids
    assert {i["key"] for i in key["items"].values()} == {(f"{c}-{i}" if same_keys else f"sample-{c}-{i}")
                                                          for c in CHARS for i in range(5)}
    _, rows = read_rows(out / "sheet_01.csv")
    by_answer = {r[4]: r for r in rows}
    for aid, a in key["answers"].items():
        item = key["items"][a["item_id"]]
        c, i = item["character"], int(item["question"].split("问题")[1][0])
        expected = answer_text(2 if a["model"] == "lora" else 0, f"{c}-{i}")
        assert by_answer[aid][5] == expected  # each model's own answer to the same question
        assert by_answer[aid][1] == f"{c}，问题{i}是什么？"
    # profiles of the train run's dataset (config.yaml data.root), as "field：value" lines
    assert {r[3] for r in rows if r[2] == "刘星"} == {"名字：刘星\n来源：DATASET-刘星"}


def test_train_run_whose_dataset_moved_still_exports_with_a_note(tmp_path):
    train = make_train_run(tmp_path / "train-run", None)
    ev = make_run(tmp_path / "eval-run", 0, profiles=False)
    r = run_cli("human", "export", "--answers", f"lora={train}", "--answers", f"base={ev}", "--out", tmp_path / "o",
                "--n", 3, "--annotators", 1)
    assert r.returncode == 0, r.stderr
    assert "lora: profiles of the dataset in its config.yaml (data.root=/nonexistent/dataset) not read" in r.stderr
    assert "no profile for 3 character(s)" in r.stderr


def test_a_directory_without_samples_is_refused_by_name(runs, tmp_path):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    err = one_error(export({"a": runs["zeta_base"], "b": empty}, tmp_path / "o"))
    assert f"--answers b={empty}: no samples.jsonl or predictions.jsonl in this directory" in err
