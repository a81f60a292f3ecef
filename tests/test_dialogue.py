"""Multi-turn dialogue (issue 17): rendering, the per-turn loss mask on real chat templates, script
windows split by scene, the dialogue mix, and train.py with data.dialogue=on / data=dialogue."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from conftest import FAST, REPO, cli_env, read_jsonl, read_metrics, run_train

from rolecraft.data import resolve_data_root
from rolecraft.data.dialogue import WindowOptions, script_samples
from rolecraft.data.mixing import training_samples
from rolecraft.data.prompts import PromptBuilder
from rolecraft.data.schema import EMOTION_ZH, Sample, Utterance, load
from rolecraft.data.tokenize import IGNORE_INDEX, ChatEncoder
from rolecraft.errors import ConfigError

LABELS = re.compile("（(?:" + "|".join(EMOTION_ZH.values()) + ")）")

CHAT = [{"role": "system", "content": "你是老罗。"}, {"role": "user", "content": "老板，好辣！"},
        {"role": "assistant", "content": "莫急噻。"}, {"role": "user", "content": "给我换个锅。"},
        {"role": "assistant", "content": "要得，马上换。"}]

# what each template puts after an answer: the labelled text of the turns, literally
EXPECTED = {
    "tiny": {"all": ["莫急噻。<|im_end|>\n", "要得，马上换。<|im_end|>\n"], "last": ["要得，马上换。<|im_end|>\n"]},
    "llama3_8b": {"all": ["莫急噻。<|eot_id|>", "要得，马上换。<|eot_id|>"], "last": ["要得，马上换。<|eot_id|>"]},
    # GLM-4 ends an answer with no stop token (the next <|user|> does): eos appended to EVERY trained turn
    "glm4_9b": {"all": ["\n莫急噻。<|endoftext|>", "\n要得，马上换。<|endoftext|>"],
                "last": ["\n要得，马上换。<|endoftext|>"]},
    # Qwen3 re-renders earlier turns (the last answer gets an empty think block, earlier ones lose it):
    # the earlier answer is placed in the last answer's generation prompt, with its <|im_end|>
    "qwen3_8b": {"all": ["莫急噻。<|im_end|>", "要得，马上换。<|im_end|>\n"], "last": ["要得，马上换。<|im_end|>\n"]},
}


@pytest.fixture(scope="module")
def demo():
    return load(resolve_data_root("embedded:demo"))


@pytest.fixture(scope="session")
def tokenizers(cache_dir):
    """The embedded model's tokenizer (ChatML) and two twins' tokenizers carrying the presets' real chat
    templates and stop tokens (the tokenizer part of a twin only: no model is built)."""
    from transformers import AutoTokenizer

    from rolecraft.modeling.base import stop_token_ids
    from rolecraft.modeling.tiny import ensure_embedded
    from rolecraft.modeling.twins import _train_tokenizer, load_preset, twin_spec

    out = {"tiny": (AutoTokenizer.from_pretrained(str(ensure_embedded("tiny", cache_dir))), None)}
    for name in ("llama3_8b", "glm4_9b", "qwen3_8b"):
        preset = load_preset(name)
        tok = _train_tokenizer(preset, twin_spec(preset))
        out[name] = (tok, stop_token_ids(tok, preset))
    return out


def _runs(enc) -> list[list[int]]:
    """The labelled stretches of a row, each as token ids."""
    runs, cur = [], []
    for t, lab in zip(enc.input_ids, enc.labels):
        if lab == IGNORE_INDEX:
            if cur:
                runs.append(cur)
            cur = []
        else:
            assert lab == t  # a label is the token at its position
            cur.append(lab)
    return runs + ([cur] if cur else [])


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("loss", ["all", "last"])
def test_loss_mask_token_by_token(tokenizers, name, loss):
    tok, end_ids = tokenizers[name]
    enc = ChatEncoder(tok, 1024, 128, end_ids=end_ids)
    row = enc.encode(CHAT, "s1", loss)
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    assert _runs(row) == [ids(t) for t in EXPECTED[name][loss]]
    # the whole row is the template's rendering (plus eos after a trained turn the template leaves open)
    full = tok.apply_chat_template(CHAT, tokenize=False)
    if name == "glm4_9b":
        full = full.replace("莫急噻。", "莫急噻。<|endoftext|>" if loss == "all" else "莫急噻。") + "<|endoftext|>"
    assert tok.decode(row.input_ids) == full
    # the last answer is conditioned on exactly the generation prompt inference uses
    prompt = enc.prompt_ids(CHAT[:-1])
    if name != "glm4_9b" or loss == "last":
        assert row.input_ids[:len(prompt)] == prompt
    assert enc.truncated.last_only == 0 and enc.truncated.prompts == 0


def test_loss_all_places_earlier_answers_of_a_rerendering_template_past_the_system_prompt(tokenizers):
    tok, _ = tokenizers["tiny"]
    # the last answer is marked, so no rendering is a prefix of the next; the system prompt quotes the
    # first answer verbatim (as exemplars quote script lines): the label must land on the turn
    tpl = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' and loop.last %}[final]"
           "{% endif %}{{ m.content }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    chat = [{"role": "system", "content": "你是老罗。常说：莫急噻。"}, *CHAT[1:]]
    enc = ChatEncoder(tok, 1024, 128, chat_template=tpl)
    row = enc.encode(chat, "s1", "all")
    assert enc.truncated.last_only == 0
    assert [tok.decode(r) for r in _runs(row)] == ["莫急噻。<|im_end|>", "[final]要得，马上换。<|im_end|>\n"]
    first = row.labels.index(next(lab for lab in row.labels if lab != IGNORE_INDEX))
    assert tok.decode(row.input_ids[:first]).endswith("老板，好辣！<|im_end|>\n<|im_start|>assistant\n")
    assert tok.decode(row.input_ids) == tok.apply_chat_template(chat, tokenize=False, chat_template=tpl)


def test_loss_all_on_a_template_that_drops_earlier_answers_trains_the_last_turn_counted(tokenizers):
    tok, _ = tokenizers["tiny"]
    # earlier answers are replaced when the chat goes on: nothing to place them by
    tpl = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' and not loop.last %}"
           "…{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    enc = ChatEncoder(tok, 1024, 128, chat_template=tpl)
    row = enc.encode(CHAT, "s1", "all")
    assert enc.truncated.last_only == 1
    assert [tok.decode(r) for r in _runs(row)] == ["要得，马上换。<|im_end|>\n"]


def test_loss_all_truncates_the_context_from_the_left_and_counts_it(tokenizers):
    tok, _ = tokenizers["tiny"]
    enc = ChatEncoder(tok, 12, 128)
    row = enc.encode(CHAT, "s1", "all")
    answer = tok("要得，马上换。<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert len(row.input_ids) == 12 + len(answer) and row.input_ids[-len(answer):] == answer
    assert enc.truncated.prompts == 1 and enc.truncated.examples == ["s1"]
    assert len(row.labels) == len(row.input_ids)


def test_a_single_turn_chat_encodes_the_same_under_both_policies(tokenizers, demo):
    tok, _ = tokenizers["tiny"]
    msgs = PromptBuilder(demo, True, 2).messages(demo.samples[0], demo.samples[0].references[0])
    a, b = ChatEncoder(tok, 1024, 128).encode(msgs, "x", "all"), ChatEncoder(tok, 1024, 128).encode(msgs, "x", "last")
    assert (a.input_ids, a.labels) == (b.input_ids, b.labels)


# ---- rendering --------------------------------------------------------------------------------


def test_prompt_builder_renders_scene_history_and_named_turns(demo):
    character = next(iter(demo.characters))
    s = Sample("d1", "dialogue", character, "还要多久？", ["快了噻。"], "test", speaker="老李",
               messages=[{"role": "system", "content": "深夜的火锅店。"},
                         {"role": "user", "content": "老板！", "name": "老李"},
                         {"role": "assistant", "content": "来了。"}])
    pb = PromptBuilder(demo, True, 2)
    msgs = pb.messages(s, "快了噻。")
    assert msgs[0]["content"] == pb.system(character, s.instruction) + "\n【当前场景】\n深夜的火锅店。"
    assert msgs[1:] == [{"role": "user", "content": "老李：老板！"}, {"role": "assistant", "content": "来了。"},
                        {"role": "user", "content": "老李：还要多久？"}, {"role": "assistant", "content": "快了噻。"}]
    # an unnamed final turn is the user's own
    plain = Sample("d2", "dialogue", character, "你好", ["好"], "test", messages=[])
    assert pb.messages(plain)[1:] == [{"role": "user", "content": "你好"}]


# ---- script windows -------------------------------------------------------------------------


def test_script_windows_end_with_the_character_and_alternate(demo):
    samples = script_samples(demo, WindowOptions(window=4))
    assert samples and all(s.kind == "dialogue" for s in samples)
    lines = {u.id: u for u in demo.script}
    for s in samples:
        roles = [m["role"] for m in s.messages]
        assert roles[:1] != ["assistant"] and len(s.messages) <= 2
        seq = roles + ["user", "assistant"]  # history, instruction, answer: the sides alternate
        assert all(seq[i] != seq[i + 1] for i in range(len(seq) - 1))
        last = lines[s.provenance["lines"][-1]]
        assert last.speaker == s.character or last.speaker in demo.characters[s.character].profile.values()
        assert s.references[-1].endswith(last.text)
        assert not LABELS.search(s.references[0])  # the answer never carries a label
        assert all(not LABELS.search(m["content"]) for m in s.messages if m["role"] == "assistant")
    # merging: no two consecutive turns of one side, one window per character turn with stride 1
    one = script_samples(demo, WindowOptions(window=4, stride=1))
    two = script_samples(demo, WindowOptions(window=4, stride=2))
    assert len(two) < len(one) and {s.id for s in two} <= {s.id for s in one}


def test_script_windows_match_the_character_under_its_profile_name():
    ds = load(resolve_data_root("embedded:demo"))
    name = next(iter(ds.characters))
    c = ds.characters[name]
    c.profile["名字"] = "老罗"
    ds.script = [Utterance("a", name, "s", 1, "客人", "老板！", "anger"), Utterance("b", name, "s", 2, "客人", "人呢？", None),
                 Utterance("c", name, "s", 3, "老罗", "来了来了。", "happiness")]
    (s,) = script_samples(ds, WindowOptions(val=0.0, test=0.0))
    assert (s.instruction, s.speaker, s.references, s.messages) == ("（愤怒）老板！\n人呢？", "客人", ["来了来了。"], [])
    assert PromptBuilder(ds, True, 0).messages(s)[-1]["content"] == "客人：（愤怒）老板！\n人呢？"


def test_no_scene_leaks_across_splits(demo):
    samples = script_samples(demo, WindowOptions(val=0.3, test=0.3))
    by_scene: dict = {}
    for s in samples:
        by_scene.setdefault((s.character, s.provenance["dialogue"]), set()).add(s.split)
    assert all(len(splits) == 1 for splits in by_scene.values())
    assert {"train", "test"} <= set.union(*by_scene.values())
    # the same scene gets the same split whatever the other scenes and the window options are
    again = script_samples(demo, WindowOptions(window=3, stride=2, val=0.3, test=0.3))
    assert all(by_scene[(s.character, s.provenance["dialogue"])] == {s.split} for s in again)


def test_emotions_on_off_change_exactly_the_label_prefixes(demo):
    on, off = script_samples(demo, emotions=True), script_samples(demo, emotions=False)
    assert [s.id for s in on] == [s.id for s in off]
    labelled = 0
    for a, b in zip(on, off):
        pa, pb = PromptBuilder(demo, True, 6).messages(a, a.references[0]), PromptBuilder(demo, False, 6).messages(b, b.references[0])
        for ma, mb in zip(pa[1:], pb[1:]):
            labelled += bool(LABELS.search(ma["content"]))
            assert LABELS.sub("", ma["content"]) == mb["content"] and not LABELS.search(mb["content"])
    assert labelled > 50


def test_bad_window_options_fail_in_one_line(demo):
    for opts, key in ((WindowOptions(window=1), "data.dialogue_window"), (WindowOptions(stride=0), "data.dialogue_stride"),
                      (WindowOptions(val=0.5, test=0.5), "data.dialogue_test")):
        with pytest.raises(ConfigError, match=re.escape(key)) as e:
            script_samples(demo, opts)
        assert "\n" not in str(e.value)


def test_dialogue_share_of_the_training_mix(demo):
    demo.samples = [s for s in demo.samples if s.kind != "dialogue"] + script_samples(demo)
    mixed = training_samples(demo, "hybrid", dialogue=True, dialogue_ratio=0.1)
    share = sum(s.kind == "dialogue" for s in mixed) / len(mixed)
    assert share == pytest.approx(0.1, abs=0.01)
    assert {s.kind for s in training_samples(demo, "dialogue")} == {"dialogue"}
    assert "dialogue" not in {s.kind for s in training_samples(demo, "hybrid")}  # off by default


def test_stats_count_dialogue_samples():
    from rolecraft.data.stats import dataset_stats, format_stats

    ds = load(resolve_data_root("embedded:demo"))
    before = dataset_stats(ds)
    name = next(iter(ds.characters))
    ds.samples.append(Sample("d1", "dialogue", name, "还要多久？", ["快了。", "马上。"], "test", speaker="老李",
                             messages=[{"role": "user", "content": "老板！"}, {"role": "assistant", "content": "来了。"}]))
    st = dataset_stats(ds)
    assert (st["dialogue_instructions"], st["dialogue_responses"], st["dialogue_history_turns"]) == (1, 2, 2)
    assert st["instructions"] == before["instructions"] + 1 and st["splits_by_kind"]["dialogue"]["test"] == 1
    assert st["per_character"][name]["dialogue"] == 1
    assert re.search(r"Dialogue instructions\s+1\n", format_stats(st))


# ---- config and end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_data_dialogue_on_from_the_command_line_and_the_preset(cache_dir):
    def job(*args):
        r = subprocess.run([sys.executable, str(REPO / "train.py"), *args, "--cfg", "job"], cwd=REPO,
                           env=cli_env(cache_dir), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return yaml.safe_load(r.stdout)["data"]

    d = job("data.dialogue=on", "data.dialogue_loss=all")
    assert d["dialogue"] is True and d["mix"] == "hybrid" and d["dialogue_loss"] == "all"
    assert job("data=dialogue")["mix"] == "dialogue" and job("data=dialogue")["dialogue"] is True
    assert job()["dialogue"] is False and job("data.dialogue=off")["dialogue"] is False


@pytest.mark.parametrize("override,problem", [("data.dialogue_window=1", "at least 2 turns"),
                                               ("data.dialogue_ratio=1.5", "must be in (0, 1)"),
                                               ("data.dialogue_test=0.9", "leaves no scene")])
def test_bad_dialogue_options_fail_in_one_line_before_anything_loads(cache_dir, tmp_path, override, problem):
    r = run_train(["data.dialogue=on", override, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir, tmp_path, timeout=120)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr[-2000:]
    assert errors[0].startswith(f"error: {override.split('=')[0]}=") and problem in errors[0], errors[0]
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.slow
def test_train_with_script_dialogue_reports_share_and_dlg(cache_dir, tmp_path):
    r = run_train(["data.dialogue=on", *FAST, "trainer.max_steps=2", f"hydra.run.dir={tmp_path / 'run'}"],
                  cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "run")
    assert m["data/dialogue_samples"] > 0 and 0 < m["data/dialogue_share"] < 1
    for col in ("raw", "cus", "spe", "dlg"):
        assert m[f"test/n/{col}"] == 4 and 0 <= m[f"test/rouge_l/{col}"] <= 1
    rows = [r for r in read_jsonl(tmp_path / "run" / "samples.jsonl") if r.get("kind") == "dialogue"]
    assert len(rows) == 4


@pytest.mark.slow
def test_train_on_dialogue_alone(cache_dir, tmp_path):
    r = run_train(["data=dialogue", "data.dialogue_loss=all", *FAST, "trainer.max_steps=2",
                   f"hydra.run.dir={tmp_path / 'run'}"], cache_dir, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "run")
    assert m["data/dialogue_share"] == 1.0 and m["data/dialogue_samples"] == m["train/dataset_samples"]
    assert m["test/n/dlg"] == 4 and "data/dialogue_last_only" not in m


# ---- chat: speaker names and replay -------------------------------------------------------------


def _chat(args, stdin, cache_dir, tmp_path, env=None):
    return subprocess.run([sys.executable, str(REPO / "chat.py"), "character=罗火旺", f"paths.cache_dir={tmp_path / 'c'}",
                           *args], input=stdin, cwd=REPO, env={**cli_env(cache_dir), **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_chat_replays_a_dialogue_and_keeps_speaker_names(cache_dir, tmp_path):
    import json
    import uuid

    from rolecraft.testing.fake_openai import Content, FakeOpenAI

    replay = tmp_path / "scene.jsonl"
    replay.write_text("\n".join(json.dumps(m, ensure_ascii=False) for m in [
        {"role": "system", "content": "深夜，火锅店快打烊了。"}, {"role": "user", "content": "老板！还有位子吗？", "name": "陈先生"},
        {"role": "assistant", "content": "有有有，老表里边坐。"}]) + "\n", encoding="utf-8")
    key = "rc-test-" + uuid.uuid4().hex
    with FakeOpenAI(api_key=key) as srv:
        srv.inject("chat", Content("马上就好噻！"), Content("要得。"))
        r = _chat(["source=openai", "openai_model=fake-chat", f"endpoint.base_url={srv.base_url}",
                   "endpoint.api_key_env=K", f"replay={replay}", "endpoint.cache=false"],
                  f"/as 老李\n还要多久？\n/as\n/save {tmp_path / 'saved.json'}\n/quit\n", cache_dir, tmp_path, {"K": key})
        assert r.returncode == 0, r.stderr[-2000:]
        sent = [q.body["messages"] for q in srv.requests if q.endpoint == "chat"]
    assert "[replayed 2 turn(s) and the scene" in r.stdout and "[now speaking as 老李]" in r.stdout
    assert sent[0][0]["content"].startswith("你是罗火旺。") and sent[0][0]["content"].endswith("【当前场景】\n深夜，火锅店快打烊了。")
    assert sent[0][1:] == [{"role": "user", "content": "陈先生：老板！还有位子吗？"},
                           {"role": "assistant", "content": "有有有，老表里边坐。"},
                           {"role": "user", "content": "老李：还要多久？"}]
    saved = json.loads((tmp_path / "saved.json").read_text(encoding="utf-8"))["messages"]
    assert saved[0]["role"] == "system" and saved[-2] == {"role": "user", "content": "还要多久？", "name": "老李"}
    # what /save wrote replays as it was (a JSON object with messages)
    from rolecraft.chat import read_replay

    assert read_replay(str(tmp_path / "saved.json")) == saved


@pytest.mark.parametrize("text,where,what", [
    ('{"role": "user", "content": "你好"}\n{"role": "bot", "content": "嗯"}\n', "bad.jsonl:2", "role 'bot'"),
    ('{"role": "user", "content": "你好"}\n{"role": "system", "content": "场景"}\n', "bad.jsonl:2", "only come first"),
    ('{"role": "user", "content": "你好"}\n{"role": "user"\n', "bad.jsonl:2", "malformed JSON"),
])
def test_chat_refuses_a_bad_replay_row_in_one_line(cache_dir, tmp_path, text, where, what):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text, encoding="utf-8")
    r = _chat(["source=openai", "endpoint.base_url=http://127.0.0.1:9", f"replay={bad}"], "", cache_dir, tmp_path)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr[-2000:]
    assert where in errors[0] and what in errors[0] and "messages[0]" not in errors[0]
