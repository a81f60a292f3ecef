"""chat.py driven through stdin, and `rolecraft export` of a trained run for serving."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, REPO, cli_env


@pytest.fixture(scope="module")
def run_dir(cache_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chatrun") / "run"
    r = subprocess.run([sys.executable, str(REPO / "train.py"), "retrieval=lexical", *FAST, "trainer.max_steps=3",
                        f"hydra.run.dir={out}"], cwd=REPO, env=cli_env(cache_dir), capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.mark.slow
def test_chat_through_stdin_with_reset_save_and_character(run_dir, cache_dir, tmp_path):
    script = "\n".join(["你好，老板", f"/save {tmp_path / 'one.json'}", f"/save {tmp_path / 'one.json' / 'x.json'}", "/reset", "今天生意怎么样？", "/character 无名氏",
                        "/character 梅秀兰", "你是谁？", f"/save {tmp_path / 'two.json'}", "/quit", "never read"]) + "\n"
    r = subprocess.run([sys.executable, str(REPO / "chat.py"), f"run={run_dir}", "character=罗火旺",
                        "generation.max_new_tokens=12"], input=script, cwd=REPO, env=cli_env(cache_dir),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not list(REPO.glob("chat*.log")) and not (REPO / "outputs" / ".hydra").exists()  # a chat leaves no files
    out = r.stdout
    assert out.count("罗火旺：") >= 2 and "梅秀兰：" in out
    assert "[conversation reset]" in out and "known: 罗火旺" in out and "[now playing 梅秀兰" in out
    assert f"[could not save to {tmp_path / 'one.json' / 'x.json'}" in out  # its folder is a file
    one = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))
    assert one["character"] == "罗火旺" and [m["role"] for m in one["messages"]] == ["user", "assistant"]
    assert one["messages"][0]["content"] == "你好，老板"
    two = json.loads((tmp_path / "two.json").read_text(encoding="utf-8"))
    assert two["character"] == "梅秀兰" and [m["content"] for m in two["messages"][::2]] == ["你是谁？"]


def _session(run_dir, cache_dir, *overrides):
    from hydra import compose, initialize_config_dir

    import rolecraft.config
    from rolecraft.chat import Session
    from rolecraft.paths import config_dir, quote_non_ascii_overrides

    rolecraft.config.register()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("chat", overrides=quote_non_ascii_overrides(
            [f"run={run_dir}", f"paths.cache_dir={cache_dir}", "paths.output_dir=.", *overrides]))
    return Session(cfg)


@pytest.mark.slow
def test_tokens_stream_history_keeps_to_its_budget_and_retrieval_runs_every_turn(run_dir, cache_dir):
    s = _session(run_dir, cache_dir, "generation.max_new_tokens=16", "history_budget=40", "character=罗火旺")

    class Pieces(io.StringIO):
        writes = 0

        def write(self, text):
            Pieces.writes += 1
            return super().write(text)

    out = Pieces()
    text = s.reply("你好", out)
    assert out.getvalue() == text or out.getvalue().strip() == text
    assert Pieces.writes > 1, "the answer should arrive in pieces, not at the end"
    s.history = [{"role": "user", "content": "甲" * 15}, {"role": "assistant", "content": "乙" * 15},
                 {"role": "user", "content": "丙" * 10}, {"role": "assistant", "content": "丁" * 10}]
    msgs = s.messages("火锅")
    assert [m["content"][0] for m in msgs[1:-1]] == ["丙", "丁"]  # the older pair no longer fits 40 characters
    # the run trained with retrieval=lexical: the context is chosen per turn
    assert "与问题相关的台词和设定" in msgs[0]["content"]
    assert s.messages("火锅底料")[0]["content"] != s.messages("你儿子在哪里读书？")[0]["content"]


@pytest.mark.slow
def test_merged_export_generates_what_adapter_plus_base_generates(run_dir, cache_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rolecraft.inference.sources import load_run

    env = cli_env(cache_dir)
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "export", str(run_dir), "--merge", str(tmp_path / "m"),
                        "--cache-dir", str(cache_dir)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "vllm serve" in r.stdout
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "m")  # plain transformers: no peft, no rolecraft
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    peft_model = load_run(str(run_dir), str(cache_dir)).model
    msgs = [{"role": "user", "content": "你好，你是谁？"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        a = merged.generate(ids, max_new_tokens=12, do_sample=False)
        b = peft_model.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
        merged_logits = merged(ids).logits
        peft_logits = peft_model(input_ids=ids).logits
        with peft_model.disable_adapter():
            base_logits = peft_model(input_ids=ids).logits
    assert a.tolist() == b.tolist()
    # the adapter really is in the merged weights: equal to base + adapter, different from the base
    assert torch.allclose(merged_logits, peft_logits, atol=1e-5)
    assert (merged_logits - base_logits).abs().max() > 1e-4
    # the adapter alone loads with plain peft on the base it names
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "export", str(run_dir), "--adapter", str(tmp_path / "a"),
                        "--cache-dir", str(cache_dir)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    from peft import AutoPeftModelForCausalLM

    again = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "a")
    with torch.no_grad():
        c = again.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    assert c.tolist() == a.tolist()
    # never over an existing directory
    r = subprocess.run([sys.executable, "-m", "rolecraft.cli", "export", str(run_dir), "--merge", str(tmp_path / "m"),
                        "--cache-dir", str(cache_dir)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "not empty" in r.stderr


@pytest.mark.slow
def test_chat_with_an_endpoint_streams_through_the_projects_client(cache_dir, tmp_path):
    """source=openai against the loopback server: pieces stream, a 429 is retried, and the same turn
    in a new session comes from the answer cache shared with evaluate.py (no new request)."""
    import uuid

    from conftest import cli_env
    from rolecraft.testing.fake_openai import Content, FakeOpenAI, Status

    key = "rc-test-" + uuid.uuid4().hex
    with FakeOpenAI(api_key=key) as srv:
        srv.inject("chat", Status(429, retry_after=0), Content("火锅要趁热吃噻！"))
        env = {**cli_env(cache_dir), "CHAT_TEST_KEY": key}
        args = [sys.executable, str(REPO / "chat.py"), "source=openai", "openai_model=fake-chat",
                f"endpoint.base_url={srv.base_url}", "endpoint.api_key_env=CHAT_TEST_KEY", "endpoint.backoff_base=0.05",
                "character=罗火旺", f"paths.cache_dir={tmp_path / 'cache'}", "generation.do_sample=false"]
        runs = [subprocess.run(args, input="你好\n/quit\n", cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=120) for _ in range(2)]
        for r in runs:
            assert r.returncode == 0, r.stderr[-2000:]
            assert "罗火旺：火锅要趁热吃噻！" in r.stdout
        assert srv.count("chat") == 2  # the 429 and the answer; the second session asked nothing
        sent = [q for q in srv.requests if q.endpoint == "chat"][-1].body
        assert sent["stream"] is True and sent["messages"][0]["content"].startswith("你是罗火旺。")
