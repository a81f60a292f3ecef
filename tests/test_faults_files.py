"""Faults with the user's files: ``--out`` never destroys what RoleCraft did not write, a damaged
file is one ``FILE:LINE`` error (never a traceback, never success), a CSV with a stray quote loses
one line (or the import fails loudly), and the authors' layout imports by content with every
loss reported. Seeded and bounded; the subprocess ones drive the real CLIs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, cli_env, run_evaluate, run_train, shared_data
from rolecraft.data import resolve_data_root
from rolecraft.errors import DataError
from rolecraft.fileio import OUTPUT_MARKER, OutputError, atomic_dir, check_output_dir, read_jsonl

pytestmark = pytest.mark.fault

SEED = 20261
N_CORRUPTIONS = 20  # over the demo dataset's three JSONL files


def cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = cli_env(Path(os.environ.get("ROLECRAFT_CACHE", "/tmp/rc-cache")))
    return subprocess.run([sys.executable, "-m", "rolecraft.cli", *map(str, args)], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), r.stderr[-2000:]
    return last


def tree_hash(root: Path) -> str:
    """Every path, mode and content under ``root``: equal before and after means untouched."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + oct(p.stat().st_mode).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def jl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def make_character(root: Path, name: str = "桃子", drop: tuple[str, ...] = (), rename: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    files = {
        f"{name}_desc.txt": f"名字：{name}，年龄：20岁；性格特点：内向\n",
        f"{name}_scriopt.jsonl": jl([{"role": "其他", "content": "(中立)你好"}, {"role": name, "content": "(快乐)好滴"}]),
        f"{name}_specific_QA.json": json.dumps([{"instruction": f"{name}，你喜欢什么？", "generated": "摄影！"}],
                                               ensure_ascii=False),
        f"{name}_general_rp1.jsonl": jl([{"role": name, "instruction": "写一首诗。", "generated": "春天来了"}]),
    }
    for fname, text in files.items():
        if fname not in drop:
            (d / (rename or {}).get(fname, fname)).write_text(text, encoding="utf-8")
    return d


# ---- --out never deletes what the tool did not write ---------------------------------------


@pytest.fixture()
def src_tree(tmp_path: Path) -> Path:
    """tmp/work/role/桃子/... plus a user's own files beside it."""
    work = tmp_path / "work"
    make_character(work / "role")
    (work / "notes.txt").write_text("the user's notes\n", encoding="utf-8")
    (work / "mine").mkdir()
    (work / "mine" / "thesis.tex").write_text("\\section{mine}\n", encoding="utf-8")
    return work


@pytest.mark.parametrize("target", ["user_dir", "source", "source_parent", "dot"])
@pytest.mark.parametrize("force", [False, True])
def test_out_refuses_what_the_tool_did_not_write(src_tree: Path, target: str, force: bool):
    out, cwd = {"user_dir": (src_tree / "mine", None), "source": (src_tree / "role", None),
                "source_parent": (src_tree, None), "dot": (Path("."), src_tree / "mine")}[target]
    before = tree_hash(src_tree)
    r = cli("data", "import", "roleinstruct-v1", src_tree / "role", "--out", out, *(["--force"] if force else []),
            cwd=cwd)
    err = one_line_error(r)
    assert str(out) in err and ("--force" in err or "input" in err or "current directory" in err), err
    assert tree_hash(src_tree) == before  # every file untouched, no temp dir left
    assert not [p for p in src_tree.parent.rglob(".*") if p.name.endswith((".tmp", ".old"))]


def test_force_replaces_only_a_directory_the_tool_wrote(src_tree: Path, tmp_path: Path):
    out = tmp_path / "ds"
    assert cli("data", "import", "roleinstruct-v1", src_tree / "role", "--out", out).returncode == 0
    assert "rolecraft data import roleinstruct-v1" in (out / OUTPUT_MARKER).read_text(encoding="utf-8")
    (out / "stale.txt").write_text("from the first import\n", encoding="utf-8")
    err = one_line_error(cli("data", "import", "roleinstruct-v1", src_tree / "role", "--out", out))
    assert "not empty" in err and "--force" in err and (out / "stale.txt").exists()
    r = cli("data", "import", "roleinstruct-v1", src_tree / "role", "--out", out, "--force")
    assert r.returncode == 0, r.stderr
    assert not (out / "stale.txt").exists() and (out / "samples.jsonl").is_file()
    # the same directory without the marker is the user's: --force does not touch it
    (out / OUTPUT_MARKER).unlink()
    before = tree_hash(out)
    err = one_line_error(cli("data", "import", "roleinstruct-v1", src_tree / "role", "--out", out, "--force"))
    assert "not written by RoleCraft" in err
    assert tree_hash(out) == before


def test_protected_places_are_refused_even_with_force(tmp_path: Path):
    """Only the check runs (it never writes), so a regression cannot delete anything here."""
    for p in (Path("/"), Path.home(), REPO, REPO / "src", REPO / "conf" / "x", Path.cwd(), Path.cwd() / ".."):
        with pytest.raises(OutputError):
            check_output_dir(p, force=True, inputs=[])
    (tmp_path / "in").mkdir()
    with pytest.raises(OutputError, match="holds the input"):
        check_output_dir(tmp_path, force=True, inputs=[tmp_path / "in" / "file.csv"])


def test_failure_leaves_nothing_half_written(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.jsonl").write_text("{}\n")
            raise RuntimeError("disk full")
    assert sorted(tmp_path.iterdir()) == []


# ---- damaged JSONL: FILE:LINE, no traceback, non-zero exit -----------------------------------


def corruptions(n: int = N_CORRUPTIONS, seed: int = SEED) -> list[tuple[str, str, int]]:
    """(file, mode, offset): truncate at k (never exactly at a line end, where the rest stays valid)
    or overwrite byte k with 0xff; seeded."""
    demo = resolve_data_root("embedded:demo")
    rng = random.Random(seed)
    out = []
    names = ["characters.jsonl", "script.jsonl", "samples.jsonl"]
    while len(out) < n:
        name = names[len(out) % 3]
        data = (demo / name).read_bytes()
        k = rng.randrange(1, len(data) - 1)
        mode = rng.choice(["truncate", "flip"])
        if mode == "truncate" and (data[k - 1] == 0x0A or data[k] == 0x0A):
            continue
        out.append((name, mode, k))
    return out


def corrupt_copy(dst: Path, name: str, mode: str, k: int) -> tuple[Path, int]:
    """The demo dataset copied to ``dst`` with ``name`` damaged; returns the file and the line of byte k."""
    shutil.copytree(resolve_data_root("embedded:demo"), dst)
    f = dst / name
    data = f.read_bytes()
    f.write_bytes(data[:k] if mode == "truncate" else data[:k] + b"\xff" + data[k + 1:])
    return f, data[:k].count(b"\n") + 1


CASES = corruptions()


def test_corruptions_cover_both_modes_and_every_file():
    assert len(CASES) == N_CORRUPTIONS
    assert {m for _, m, _ in CASES} == {"truncate", "flip"} and len({n for n, _, _ in CASES}) == 3


@pytest.mark.parametrize("name,mode,k", CASES, ids=[f"{n}-{m}-{k}" for n, m, k in CASES])
def test_damaged_jsonl_is_one_line_error_with_file_and_line(tmp_path: Path, name: str, mode: str, k: int):
    f, line = corrupt_copy(tmp_path / "ds", name, mode, k)
    with pytest.raises(DataError) as e:
        list(read_jsonl(f))
    assert str(e.value).startswith(f"{f}:{line}: "), str(e.value)
    # the real CLIs: same one-line error, same exit code from validate and stats
    for cmd in ("validate", "stats"):
        err = one_line_error(cli("data", cmd, tmp_path / "ds"))
        assert f"{f}:{line}: " in err, (cmd, err)
        assert ("not UTF-8" in err or "cut off" in err or "malformed JSON" in err), err


def test_truncated_chinese_line_says_cut_off(tmp_path: Path):
    f = tmp_path / "p.jsonl"
    data = jl([{"prediction": "你好"}, {"prediction": "再见"}]).encode()
    f.write_bytes(data[: data.rindex("见".encode()) + 1])  # ends inside the last character
    with pytest.raises(DataError, match=rf"^{f}:2: the last line is cut off"):
        list(read_jsonl(f))
    f.write_bytes(data[:-3])  # ends after a whole character, before the closing quote
    with pytest.raises(DataError, match=rf"^{f}:2: the last line is cut off"):
        list(read_jsonl(f))


def test_empty_samples_is_an_error_for_validate_and_stats(tmp_path: Path):
    ds = tmp_path / "ds"
    shutil.copytree(resolve_data_root("embedded:demo"), ds)
    (ds / "samples.jsonl").write_bytes(b"")
    for cmd in ("validate", "stats"):
        err = one_line_error(cli("data", cmd, ds))
        assert "samples.jsonl: no samples" in err


@pytest.mark.slow
def test_train_and_evaluate_name_the_damaged_line(tmp_path: Path, cache_dir: Path):
    name, mode, k = CASES[2]  # samples.jsonl: what train.py reads first
    f, line = corrupt_copy(tmp_path / "ds", name, mode, k)
    r = run_train([f"data.root={tmp_path / 'ds'}", "trainer.max_steps=1"], cache_dir, tmp_path / "runs")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{f}:{line}: " in r.stderr, r.stderr[-3000:]
    preds = tmp_path / "p.jsonl"
    preds.write_bytes(jl([{"id": f"q{i}", "prediction": f"第{i}个回答"} for i in range(5)]).encode()
                      .replace("第3".encode(), b"\xff3"))
    r = run_evaluate(["answers=predictions", f"answers.path={preds}"], cache_dir, tmp_path / "ev")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{preds}:4: not UTF-8 (byte 0xff at column" in r.stderr, r.stderr[-3000:]


# ---- CPED: a stray quote loses one line, or the import fails loudly ------------------------


CPED_HEADER = ("TV_ID,Dialogue_ID,Utterance_ID,Speaker,Gender,Age,Neuroticism,Extraversion,Openness,"
               "Agreeableness,Conscientiousness,Scene,FacePosition_LU,FacePosition_RD,Sentiment,Emotion,DA,Utterance\n")


def cped_rows(n: int) -> list[str]:
    rows = []
    for i in range(n):
        who = "于春晓" if i % 2 == 0 else "其他"
        rows.append(f"32,32_{i // 10:03d},32_{i // 10:03d}_{i:03d},{who},female,young,high,high,low,high,high,car,"
                    f"1_1,2_2,neutral,neutral,question,第{i}句话\n")
    return rows


def test_cped_stray_quote_costs_one_line(tmp_path: Path):
    rows = cped_rows(2000)
    rows[40] = rows[40].replace(",第40句话", ',"第40句话')  # an opening quote that never closes
    (tmp_path / "c.csv").write_text(CPED_HEADER + "".join(rows), encoding="utf-8-sig")
    r = cli("data", "import", "cped", tmp_path / "c.csv", "--out", tmp_path / "out", "--min-utterances", "5")
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path / 'c.csv'}:42: " in r.stderr  # header is line 1
    assert "1999 utterances" in r.stdout
    n = sum(1 for _ in (tmp_path / "out" / "script.jsonl").open(encoding="utf-8"))
    assert n == 1999


def test_cped_unreadable_csv_fails_and_writes_nothing(tmp_path: Path):
    rows = cped_rows(200)
    rows = [r.replace(",第", ',"第', 1) if i % 3 == 0 else r for i, r in enumerate(rows)]  # 67 broken rows
    (tmp_path / "c.csv").write_text(CPED_HEADER + "".join(rows), encoding="utf-8-sig")
    err = one_line_error(cli("data", "import", "cped", tmp_path / "c.csv", "--out", tmp_path / "out",
                             "--min-utterances", "5"))
    assert "cannot be parsed" in err and f"{tmp_path / 'c.csv'}:" in err
    assert not (tmp_path / "out").exists()


# ---- RoleInstruct v1: files by content, partial characters reported ------------------------


def test_renamed_qa_file_in_a_copied_character_is_recognised(tmp_path: Path):
    from rolecraft.data.importers import import_roleinstruct_v1

    real = shared_data("roleinstruct-v1", "role", "何赛")
    shutil.copytree(real, tmp_path / "a" / "何赛")
    shutil.copytree(real, tmp_path / "b" / "何赛")
    (tmp_path / "b" / "何赛" / "何赛_specific_QA.json").rename(tmp_path / "b" / "何赛" / "问答-何赛.json")
    want, _ = import_roleinstruct_v1(tmp_path / "a")
    got, defects = import_roleinstruct_v1(tmp_path / "b")
    assert [s.instruction for s in got.samples] == [s.instruction for s in want.samples]
    assert sum(s.kind == "specific" for s in got.samples) > 100
    assert len(got.script) == len(want.script)
    assert any(d.kind == "file_name" and d.file.endswith("问答-何赛.json") and "specific QA" in d.message
               for d in defects)
    assert not [d for d in defects if d.kind in ("character_skipped", "character_partial")]


def test_missing_part_imports_the_rest_with_a_non_zero_exit(tmp_path: Path):
    make_character(tmp_path / "role", "桃子")
    make_character(tmp_path / "role", "刘星", drop=("刘星_specific_QA.json",))
    r = cli("data", "import", "roleinstruct-v1", tmp_path / "role", "--out", tmp_path / "o1")
    err = one_line_error(r)
    assert "1 imported without a part" in err and "--allow-partial" in err
    assert "character '刘星' imported without its missing specific QA" in r.stderr
    assert "characters: 2 found, 2 imported (1 partial), 0 skipped" in r.stdout
    names = [json.loads(x)["name"] for x in (tmp_path / "o1" / "characters.jsonl").open(encoding="utf-8")]
    assert sorted(names) == ["刘星", "桃子"]
    r = cli("data", "import", "roleinstruct-v1", tmp_path / "role", "--out", tmp_path / "o2", "--allow-partial")
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and "Traceback" not in r.stderr


def test_skipped_folder_is_counted_and_fails(tmp_path: Path):
    make_character(tmp_path / "role", "桃子")
    (tmp_path / "role" / "空").mkdir()
    (tmp_path / "role" / "空" / "readme.md").write_text("nothing here\n", encoding="utf-8")
    r = cli("data", "import", "roleinstruct-v1", tmp_path / "role", "--out", tmp_path / "o")
    err = one_line_error(r)
    assert "1 character folder(s) skipped" in err
    assert "characters: 2 found, 1 imported (0 partial), 1 skipped" in r.stdout
