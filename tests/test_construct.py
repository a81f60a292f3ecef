"""construct.py against a real OpenAI-compatible server on 127.0.0.1 (rolecraft.testing.fake_openai
answering construction prompts with rolecraft.testing.fake_construct), faults included."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, cli_env
from rolecraft.testing.fake_construct import construct_responder
from rolecraft.testing.fake_openai import Delay, Drop, FakeOpenAI, Status

KEY_ENV = "ROLECRAFT_TEST_LLM_KEY"
DATA_FILES = ("meta.json", "characters.jsonl", "script.jsonl", "samples.jsonl")


@pytest.fixture()
def key(monkeypatch) -> str:
    k = "rc-llm-" + uuid.uuid4().hex  # made at run time: no key-shaped literal in the repo
    monkeypatch.setenv(KEY_ENV, k)
    return k


@pytest.fixture()
def server(key):
    with FakeOpenAI(api_key=key, responder=construct_responder) as srv:
        yield srv


@pytest.fixture(scope="module")
def raw_data(tmp_path_factory) -> Path:
    """Two demo characters with the emotion labels removed and one profile cut down: work for every stage."""
    from rolecraft.data import resolve_data_root, schema

    ds = schema.load(resolve_data_root("embedded:demo"))
    keep = list(ds.characters)[:2]
    ds.characters = {k: v for k, v in ds.characters.items() if k in keep}
    ds.script = [u for u in ds.script if u.character in keep]
    for u in ds.script:
        u.emotion = None
    ds.samples = [s for s in ds.samples if s.character in keep and s.kind != "general"]
    first = ds.characters[keep[0]]
    first.profile = {k: first.profile[k] for k in ("名字", "年龄")}
    out = tmp_path_factory.mktemp("raw") / "data"
    schema.save(ds, out)
    return out


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import rolecraft.config
    from rolecraft.paths import config_dir

    rolecraft.config.register()

    with initialize_config_dir(config_dir(), version_base="1.3"):
        return hydra_compose("construct", overrides=overrides)


def construct(srv, tmp: Path, name: str, *extra: str, journal: str = "journal.sqlite", data: Path | None = None):
    """Run construct in this process (the same run() the CLI calls); returns the report."""
    from rolecraft.construct.main import run

    out = tmp / name
    cfg = compose([
        f"construct.input={data}", f"construct.out={out / 'dataset'}", f"construct.journal={tmp / journal}",
        f"paths.output_dir={out}", f"llm.base_url={srv.base_url}", f"llm.api_key_env={KEY_ENV}",
        "llm.model=fake-chat", "llm.backoff_base=0.01", "llm.concurrency=4", "construct.progress=false",
        "construct.general.max_instructions=2", "construct.general.answers=2", "construct.qa.rounds=1",
        "construct.qa.questions=3", "construct.annotate.batch_size=8", *extra])
    return run(cfg)


def files(d: Path) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in DATA_FILES}


# ---- every stage end to end ----------------------------------------------------------------


def test_all_stages_end_to_end_then_a_warm_rerun_sends_nothing(server, raw_data, tmp_path):
    from rolecraft.data import schema

    rep = construct(server, tmp_path, "a", data=raw_data)
    ds = schema.load(tmp_path / "a" / "dataset")
    assert rep["failures"] == []
    # annotate: every utterance got one of the 10 labels, with provenance naming model, params and template
    assert ds.script and all(u.emotion is not None for u in ds.script)
    prov = ds.script[0].provenance
    assert prov["stage"] == "annotate" and prov["model"] == "fake-chat"
    assert prov["params"] == {"temperature": 0.7, "top_p": 0.95, "max_tokens": 2048}
    assert len(prov["template_sha256"]) == 16
    made = [u.provenance for u in ds.script] + [s.provenance for s in ds.samples if s.id.startswith(("qa-", "gen-"))]
    assert all(p and p["model"] == "fake-chat" and p["template_sha256"] and p["params"] for p in made)
    # profile: only the incomplete one was written; the given facts were kept
    first, second = list(ds.characters.values())
    assert rep["records"]["profile"] == 1 and first.provenance["stage"] == "profile"
    given = schema.load(raw_data).characters[first.name].profile
    assert {k: first.profile[k] for k in given} == given
    assert all(first.profile[f] for f in compose([]).construct.profile.fields)
    assert second.provenance is None
    # qa: rounds x questions new specific samples per character
    qa = [s for s in ds.samples if s.provenance and s.provenance["stage"] == "qa"]
    assert len(qa) == 2 * 1 * 3 and all(s.kind == "specific" for s in qa)
    # general: answers per (character, instruction) as references
    gen = [s for s in ds.samples if s.provenance and s.provenance["stage"] == "general"]
    assert all(len(s.references) == 2 for s in gen) and gen
    n_requests = server.count("chat")
    assert n_requests == sum(v["requests"] for v in rep["stages"].values())
    bodies = [r.body for r in server.requests if r.endpoint == "chat"]
    assert all(b["temperature"] == 0.7 and b["top_p"] == 0.95 for b in bodies)
    # meta records the construction
    meta = json.loads((tmp_path / "a" / "dataset" / "meta.json").read_text(encoding="utf-8"))
    assert [c["stage"] for c in meta["construction"]] == ["annotate", "profile", "qa", "general"]

    rep2 = construct(server, tmp_path, "b", data=raw_data)
    assert server.count("chat") == n_requests, "a warm journal must answer every request"
    assert sum(v["answers_from_journal"] for v in rep2["stages"].values()) == n_requests
    assert rep2["tokens_paid"] == {"prompt": 0, "completion": 0}
    assert files(tmp_path / "a" / "dataset") == files(tmp_path / "b" / "dataset")


def test_faults_are_retried_and_change_nothing(server, raw_data, tmp_path):
    clean = construct(server, tmp_path, "clean", "stage=annotate", data=raw_data, journal="j1.sqlite")
    server.reset()
    server.inject("chat", Status(429, retry_after=0), Status(500), Drop(), Delay(3.0), Status(503))
    rep = construct(server, tmp_path, "faulty", "stage=annotate", "llm.timeout=1.0", data=raw_data,
                    journal="j2.sqlite")
    st = rep["stages"]["annotate"]
    assert st["retries"] == 5 and st["failed"] == 0
    assert server.count("chat") == clean["stages"]["annotate"]["requests"] + 5
    assert files(tmp_path / "clean" / "dataset") == files(tmp_path / "faulty" / "dataset")


def test_invalid_answers_are_re_asked_with_the_reason(server, raw_data, tmp_path):
    from rolecraft.data import schema

    mine = [u for u in schema.load(raw_data).script if u.character == "罗火旺"]
    first_batch = [u for u in mine if u.dialogue == mine[0].dialogue][:8]
    n = len(first_batch)
    not_json, too_few = "这不是 JSON", '[{"i": 1, "emotion": "neutral"}]'
    bad_label = "[" + ",".join('{"i": %d, "emotion": "激动"}' % i for i in range(1, n + 1)) + "]"

    def three_bad_tries(req):  # the first batch: invalid in three different ways, then valid
        msgs = req["messages"]
        if f"[1] {mine[0].speaker}：{mine[0].text}" in msgs[1]["content"] and len(msgs) < 8:
            return {2: not_json, 4: too_few, 6: bad_label}[len(msgs)]
        return construct_responder(req)

    server.responders["fake-chat"] = three_bad_tries
    rep = construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']",
                    "construct.max_attempts=4", data=raw_data)
    st = rep["stages"]["annotate"]
    assert st["failed"] == 0 and st["reasks"] == 3
    # each re-ask continues the conversation with the bad answer and what was wrong with it
    reasks = [r.body["messages"] for r in server.requests if r.endpoint == "chat" and len(r.body["messages"]) > 2]
    assert [len(m) for m in reasks] == [4, 6, 8]
    assert all(m[-2]["role"] == "assistant" and m[-1]["role"] == "user" for m in reasks)
    assert [m[-2]["content"] for m in reasks] == [not_json, too_few, bad_label]
    assert "JSON" in reasks[0][-1]["content"]
    assert f"共有 {n} 条台词，你返回了 1 个标签" in reasks[1][-1]["content"]
    assert "激动" in reasks[2][-1]["content"]
    ds = schema.load(tmp_path / "a" / "dataset")
    labelled = {u.id: u for u in ds.script if u.character == "罗火旺"}
    assert all(u.emotion is not None for u in labelled.values())
    assert all(labelled[u.id].provenance["attempts"] == 4 for u in first_batch)


def test_answers_that_stay_invalid_are_reported_never_guessed(server, raw_data, tmp_path):
    from rolecraft.data import schema

    mine = [u for u in schema.load(raw_data).script if u.character == "罗火旺"]
    first_batch = [u for u in mine if u.dialogue == mine[0].dialogue][:8]

    def stubborn(req):  # the batch that holds the first line never gets a valid answer
        first_user = next(m["content"] for m in req["messages"] if m["role"] == "user")
        return "[]" if f"[1] {mine[0].speaker}：{mine[0].text}" in first_user else construct_responder(req)

    server.responders["fake-chat"] = stubborn
    rep = construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']", data=raw_data)
    assert len(rep["failures"]) == 1
    f = rep["failures"][0]
    assert f["stage"] == "annotate" and f["attempts"] == 3 and "返回了 0 个标签" in f["error"]
    ds = schema.load(tmp_path / "a" / "dataset")
    unlabelled = [u.id for u in ds.script if u.character == "罗火旺" and u.emotion is None]
    assert unlabelled == [u.id for u in first_batch]  # the failed batch: left unlabelled, not guessed
    report = json.loads((tmp_path / "a" / "construct_report.json").read_text(encoding="utf-8"))
    assert report["failures"] == rep["failures"]
    # a rerun replays the three journaled tries for free; one more try costs exactly one request
    before = server.count("chat")
    construct(server, tmp_path, "b", "stage=annotate", "construct.characters=['罗火旺']", data=raw_data)
    assert server.count("chat") == before
    del server.responders["fake-chat"]
    rep3 = construct(server, tmp_path, "c", "stage=annotate", "construct.characters=['罗火旺']",
                     "construct.max_attempts=4", data=raw_data)
    assert server.count("chat") == before + 1 and rep3["failures"] == []


def test_a_refusing_endpoint_stops_the_run_with_one_clear_line(raw_data, tmp_path, monkeypatch):
    from rolecraft.errors import RolecraftError

    with FakeOpenAI(api_key="another", responder=construct_responder) as srv:
        monkeypatch.setenv(KEY_ENV, "wrong")
        with pytest.raises(RolecraftError, match="401"):
            construct(srv, tmp_path, "a", "stage=annotate", data=raw_data)
    assert not (tmp_path / "a" / "dataset").exists()


# ---- rate limits ---------------------------------------------------------------------------


@pytest.mark.slow
def test_requests_per_minute_limit_spaces_requests(server, raw_data, tmp_path):
    # 600/min with a 0.5 s bucket: 5 at once, then 10 per second
    construct(server, tmp_path, "a", "stage=annotate", "construct.annotate.batch_size=2",
              "llm.requests_per_minute=600", "llm.burst_seconds=0.5", "llm.concurrency=16", data=raw_data)
    times = sorted(r.time for r in server.requests if r.endpoint == "chat")
    n = len(times)
    assert n >= 25
    assert times[-1] - times[0] >= (n - 5) / 10 * 0.9
    # no 1-second window holds more than the bucket plus one second of refill
    assert max(sum(1 for t in times if a <= t < a + 1.0) for a in times) <= 5 + 10 + 1


def test_token_bucket_math():
    from rolecraft.construct.ratelimit import TokenBucket

    now = [0.0]
    b = TokenBucket(per_minute=600, burst_seconds=1.0, clock=lambda: now[0])  # 10/s, holds 10
    assert b.wait_time(10) == 0
    b.take(10)
    assert b.wait_time(1) == pytest.approx(0.1)
    now[0] = 0.5
    assert b.wait_time(5) == 0 and b.wait_time(6) == pytest.approx(0.1)
    now[0] = 2.0  # full again (capped at the bucket size)
    assert b.wait_time(30) == 0  # larger than the bucket: allowed from a full bucket, into debt
    b.take(30)
    assert b.wait_time(1) == pytest.approx(2.1)
    b.give_back(100)
    assert b.level == b.capacity == 10


# ---- crash and resume ----------------------------------------------------------------------


def _cli(srv, key, out: Path, journal: Path, data: Path, extra=()) -> subprocess.Popen:
    env = cli_env(out.parent / "cache")
    env[KEY_ENV] = key
    args = [sys.executable, str(REPO / "construct.py"), f"construct.input={data}", f"construct.out={out / 'dataset'}",
            f"construct.journal={journal}", f"hydra.run.dir={out}", f"llm.base_url={srv.base_url}",
            f"llm.api_key_env={KEY_ENV}", "llm.model=fake-chat", "llm.concurrency=4", "construct.qa.rounds=2",
            "construct.general.max_instructions=3", "construct.annotate.batch_size=4", *extra]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_exactly_the_uninterrupted_output(key, raw_data, tmp_path):
    with FakeOpenAI(api_key=key, responder=construct_responder, latency=0.05) as srv:
        p = _cli(srv, key, tmp_path / "whole", tmp_path / "j_whole.sqlite", raw_data)
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        whole_requests = srv.count("chat")
        srv.reset()

        journal = tmp_path / "j_killed.sqlite"
        p = _cli(srv, key, tmp_path / "killed", journal, raw_data)
        deadline = time.time() + 120
        while time.time() < deadline:
            if journal.exists():
                with sqlite3.connect(journal) as db:
                    try:
                        if db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] >= whole_requests // 3:
                            break
                    except sqlite3.OperationalError:
                        pass
            time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()
        assert p.returncode == -signal.SIGKILL
        assert not (tmp_path / "killed" / "dataset").exists(), "nothing half-written"
        first = srv.count("chat")
        assert 0 < first < whole_requests

        p = _cli(srv, key, tmp_path / "resumed", journal, raw_data)
        out2, err2 = p.communicate(timeout=300)
        assert p.returncode == 0, err2[-3000:]
        # no record missing or duplicated: byte-identical to the uninterrupted run
        assert files(tmp_path / "whole" / "dataset") == files(tmp_path / "resumed" / "dataset")
        # only the requests in flight at the kill were paid twice
        assert srv.count("chat") <= whole_requests + 4
    # the key is in no written file and no log
    for d in (tmp_path / "whole", tmp_path / "killed", tmp_path / "resumed"):
        for f in d.rglob("*"):
            if f.is_file():
                assert key not in f.read_text(encoding="utf-8", errors="replace"), f
    for j in (journal, tmp_path / "j_whole.sqlite"):
        assert key.encode() not in j.read_bytes()
    assert key not in out + err + out2 + err2


# ---- dry run and bad input -----------------------------------------------------------------


def test_dry_run_prints_prompts_and_estimates_and_calls_nothing(server, raw_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)  # no key needed to look
    rep = construct(server, tmp_path, "a", "construct.dry_run=true", "llm.model=gpt-4", data=raw_data)
    text = capsys.readouterr().out
    assert server.count("chat") == 0
    assert "【任务：情绪标注】" in text and "dry run, model gpt-4" in text
    assert rep["requests"] > 0 and rep["prompt_tokens"] > 0
    assert rep["cost_usd"] == pytest.approx((rep["prompt_tokens"] * 30 + rep["completion_tokens"] * 60) / 1e6)
    assert not (tmp_path / "a" / "dataset").exists()


def test_dry_run_counts_what_the_journal_already_holds(server, raw_data, tmp_path, capsys):
    construct(server, tmp_path, "a", "stage=annotate", data=raw_data)
    rep = construct(server, tmp_path, "b", "stage=annotate", "construct.dry_run=true", data=raw_data)
    assert rep["requests"] == rep["in_journal"] > 0


@pytest.mark.parametrize("override, message", [
    ("stage=annotat", "stage='annotat'"),
    ("construct.characters=['无名氏']", "known:"),
    ("construct.max_attempts=0", "max_attempts"),
    ("llm.concurrency=0", "llm.concurrency=0: must be at least 1"),
    ("llm.requests_per_minute=0", "must be positive"),
    ("construct.general.instructions=/nonexistent/x.jsonl", "no such file"),
])
def test_bad_settings_fail_with_one_clear_line(server, raw_data, tmp_path, override, message):
    from rolecraft.errors import RolecraftError

    with pytest.raises(RolecraftError, match=message.replace("[", r"\[").replace("(", r"\(")):
        construct(server, tmp_path, "a", override, data=raw_data)


def test_instructions_file_with_a_bad_line_names_file_and_line(server, raw_data, tmp_path):
    from rolecraft.errors import DataError

    f = tmp_path / "ins.jsonl"
    f.write_text('{"instruction": "介绍一下你自己"}\n{"instruction": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"ins.jsonl:2"):
        construct(server, tmp_path, "a", "stage=general", f"construct.general.instructions={f}", data=raw_data)


def test_cli_prints_one_line_error_and_exit_2(raw_data, tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "construct.py"), "stage=nope", f"hydra.run.dir={tmp_path / 'x'}"],
                       cwd=REPO, env=cli_env(tmp_path / "cache"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: stage='nope'")


@pytest.mark.slow
def test_tokens_per_minute_limit_makes_requests_wait(server, raw_data, tmp_path):
    # 60,000 tokens/min with a 0.5 s bucket holds 500 tokens; every annotate request is estimated above that
    rep = construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']",
                    "llm.tokens_per_minute=60000", "llm.burst_seconds=0.5", data=raw_data)
    st = rep["stages"]["annotate"]
    times = sorted(r.time for r in server.requests if r.endpoint == "chat")
    assert st["requests"] >= 4 and st["rate_limit_wait_s"] > 1.0
    assert times[-1] - times[0] >= 0.25 * (len(times) - 1)
    free = construct(server, tmp_path, "b", "stage=annotate", "construct.characters=['罗火旺']",
                     "construct.annotate.overwrite=true", "construct.annotate.batch_size=7", data=raw_data)
    assert free["stages"]["annotate"]["rate_limit_wait_s"] == 0.0


def test_cost_comes_from_the_price_table_file(server, raw_data, tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("fake-chat: {input: 2.0, output: 8.0}\n", encoding="utf-8")
    rep = construct(server, tmp_path, "a", "stage=annotate", f"llm.prices_file={prices}", data=raw_data)
    paid = rep["tokens_paid"]
    assert paid["prompt"] > 0 and rep["price_usd_per_1m_tokens"] == [2.0, 8.0]
    assert rep["cost_usd"] == pytest.approx((paid["prompt"] * 2.0 + paid["completion"] * 8.0) / 1e6)
    # per-run prices win over the file; a broken file fails before anything is sent
    rep = construct(server, tmp_path, "b", "stage=annotate", f"llm.prices_file={prices}", "llm.price_input=1",
                    "llm.price_output=1", data=raw_data)
    assert rep["price_usd_per_1m_tokens"] == [1.0, 1.0] and rep["cost_usd"] == 0.0  # all from the journal
    prices.write_text("fake-chat: {input: cheap}\n", encoding="utf-8")
    before = server.count("chat")
    from rolecraft.errors import ConfigError

    with pytest.raises(ConfigError, match="prices.yaml: key 'fake-chat'"):
        construct(server, tmp_path, "c", "stage=annotate", f"llm.prices_file={prices}", journal="other.sqlite",
                  data=raw_data)
    assert server.count("chat") == before


def test_qa_rounds_with_the_same_excerpt_are_separate_requests(server, raw_data, tmp_path):
    """Two rounds can draw the same excerpt (few dialogues); each is its own journal entry, so a rerun
    replays both answers instead of one (a model at temperature 0.7 answers each differently)."""
    calls = []

    def fresh_each_time(req):
        calls.append(1)
        out = json.loads(construct_responder(req))
        return json.dumps([{**qa, "question": f"{qa['question']}#{len(calls)}"} for qa in out], ensure_ascii=False)

    server.responders["fake-chat"] = fresh_each_time
    args = ("stage=qa", "construct.qa.rounds=2", "construct.qa.excerpt_chars=100000", "construct.characters=['罗火旺']")
    rep = construct(server, tmp_path, "a", *args, data=raw_data)
    assert rep["stages"]["qa"]["requests"] == 2 and rep["records"]["qa"] == 6
    rep2 = construct(server, tmp_path, "b", *args, data=raw_data)
    assert len(calls) == 2 and rep2["records"]["qa"] == 6
    assert files(tmp_path / "a" / "dataset") == files(tmp_path / "b" / "dataset")


def test_a_200_without_a_usable_body_is_retried_never_journaled(server, raw_data, tmp_path):
    server.inject("chat", Status(200, body="{not json"), Status(200, body={"error": {"message": "upstream down"}}))
    rep = construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']", data=raw_data)
    st = rep["stages"]["annotate"]
    assert st["failed"] == 0 and st["retries"] == 2
    import sqlite3 as sq

    with sq.connect(tmp_path / "journal.sqlite") as db:
        contents = [r[0] for r in db.execute("SELECT content FROM answers")]
    assert all(c.startswith("[") for c in contents) and len(contents) == st["requests"] - 2


def test_retry_after_is_honoured(server, raw_data, tmp_path):
    server.inject("chat", Status(429, retry_after=1))
    construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']", "llm.concurrency=1",
              "llm.backoff_base=0.01", data=raw_data)
    t = [r.time for r in server.requests if r.endpoint == "chat"]
    assert t[1] - t[0] >= 0.95  # backoff alone would have waited ~0.01 s


def test_a_request_the_endpoint_rejects_fails_alone(server, raw_data, tmp_path):
    server.inject("chat", Status(400, body={"error": {"message": "maximum context length exceeded",
                                                      "type": "invalid_request_error", "code": "context_length_exceeded"}}))
    rep = construct(server, tmp_path, "a", "stage=annotate", "construct.characters=['罗火旺']", "llm.concurrency=1",
                    data=raw_data)
    assert len(rep["failures"]) == 1 and "context length" in rep["failures"][0]["error"]
    assert rep["stages"]["annotate"]["done"] == rep["stages"]["annotate"]["tasks"] - 1
    # not journaled: the next run asks it again
    before = server.count("chat")
    rep2 = construct(server, tmp_path, "b", "stage=annotate", "construct.characters=['罗火旺']", data=raw_data)
    assert server.count("chat") == before + 1 and rep2["failures"] == []


def test_a_refusal_stops_the_run_and_still_reports_what_was_paid(server, raw_data, tmp_path):
    from rolecraft.errors import RolecraftError

    server.inject("chat", Delay(0.0), Delay(0.0), Status(403))  # two normal answers, then a refusal
    with pytest.raises(RolecraftError, match="403"):
        construct(server, tmp_path, "a", "stage=annotate", "llm.concurrency=1", data=raw_data)
    report = json.loads((tmp_path / "a" / "construct_report.json").read_text(encoding="utf-8"))
    assert "403" in report["aborted"] and report["stages"]["annotate"]["requests"] >= 2
    assert report["tokens_paid"]["prompt"] > 0
    assert not (tmp_path / "a" / "dataset").exists()
