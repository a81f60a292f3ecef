"""CharacterEval: loading and validating the published file formats, scenes as multi-turn chats,
the per-dimension judge (against the loopback fake server) and the reward-model scorer."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from charactereval_data import METRICS, PROFILES, SCENES, write_charactereval
from conftest import read_jsonl, read_metrics, run_evaluate
from rolecraft.errors import ConfigError, DataError

KEY_ENV = "ROLECRAFT_TEST_API_KEY"


def bench_cfg(root, **kw):
    from omegaconf import OmegaConf

    from rolecraft.config import BenchmarkConfig

    return OmegaConf.structured(BenchmarkConfig(name="charactereval", root=str(root), **kw))


def load(root, **kw):
    from rolecraft.evaluation.benchmarks import load_benchmark

    return load_benchmark(bench_cfg(root, **kw))


# ---- scenes as conversations ------------------------------------------------------------------


def test_a_scene_becomes_turns_of_the_role_and_the_others():
    from rolecraft.evaluation.charactereval import parse_context

    ctx = ("林母：秋儿，你又熬夜改作业了？\n林晚秋：妈，我不累。\n林晚秋：（给母亲倒了杯水）您先喝点水。\n"
           "窗外的雨还没停。\n\n小周：老师好！\n林母：你啊，总是这样。")
    turns, narration = parse_context(ctx, "林晚秋")
    assert turns == [
        {"role": "user", "content": "林母：秋儿，你又熬夜改作业了？"},
        {"role": "assistant", "content": "妈，我不累。\n（给母亲倒了杯水）您先喝点水。"},  # merged, stage direction kept
        {"role": "user", "content": "窗外的雨还没停。\n小周：老师好！\n林母：你啊，总是这样。"},
    ]
    assert narration == 1
    # a long text before a colon, or a stage direction before it, is narration, not a speaker
    turns, narration = parse_context("（他想了很久，终于开口）：好吧。\n沈砚：嗯。", "沈砚")
    assert narration == 1 and turns[0] == {"role": "user", "content": "（他想了很久，终于开口）：好吧。"}


def test_loading_limits_and_chats(tmp_path):
    from rolecraft.evaluation.benchmarks import chats

    root = write_charactereval(tmp_path / "ce")
    b = load(root, max_samples=8)
    assert b.total == 10 and len(b.items) == 8 and b.skipped == {"no_dimensions": 1}  # 111 has no metrics
    assert [it.key for it in b.items] == [str(s[0]) for s in SCENES[:8]]
    it = b.items[3]
    assert (it.kind, it.character, it.category) == ("dialogue", "沈砚", "剑归")
    assert it.meta["dimensions"] == [tuple(p) for p in METRICS["104"]]
    chat = chats(b)[3]
    assert chat[0]["role"] == "system" and chat[0]["content"].startswith("你是沈砚。")
    assert "武功：归云剑法、踏雪步" in chat[0]["content"]  # the profile, lists joined
    assert chat[1:] == [{"role": "user", "content": "阿福：少爷，外面有人找您，说是当年的旧识。"},
                        {"role": "assistant", "content": "（放下茶杯）让他进来。"},
                        {"role": "user", "content": "来人一身黑衣，腰间挂着一柄断剑。\n黑衣人：沈兄，别来无恙？"}]


def test_the_chat_renders_through_the_embedded_models_template(tmp_path, cache_dir):
    from transformers import AutoTokenizer

    from rolecraft.evaluation.benchmarks import chats
    from rolecraft.modeling.tiny import ensure_embedded

    tok = AutoTokenizer.from_pretrained(str(ensure_embedded("tiny", cache_dir)))
    text = tok.apply_chat_template(chats(load(write_charactereval(tmp_path / "ce")))[0], tokenize=False,
                                   add_generation_prompt=True)
    assert text.count("<|im_start|>assistant") == 2 and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\n小周：数学那道应用题，我看不懂。<|im_end|>" in text


@pytest.mark.parametrize("break_it, expected", [
    (lambda r: (r / "id2metric.jsonl").unlink(), "missing id2metric.jsonl"),
    (lambda r: (r / "test_data.jsonl").write_text('{"id": 1}', encoding="utf-8"), "expected a JSON array"),
    (lambda r: write_charactereval(r, scenes=[(1, "无名氏", "x", ["甲：你好"])]), "item id 1: role '无名氏' has no profile"),
    (lambda r: write_charactereval(r, scenes=[(1, "阿福", "x", ["甲：你好"]), (1, "阿福", "x", ["乙：好"])]),
     "item id 1: duplicate id"),
    (lambda r: write_charactereval(r, scenes=[(7, "阿福", "x", [])]), "item id 7: 'context' must be"),
    (lambda r: write_charactereval(r, metrics={"101": [["Charm", "魅力"]]}), "item id 101: unknown metric 'Charm'"),
    (lambda r: write_charactereval(r, metrics={"101": ["Fluency"]}), "item id 101: each entry must be a [metric"),
    (lambda r: write_charactereval(r, profiles={"阿福": {"年龄": {"x": 1}}}), "character '阿福', field '年龄'"),
    (lambda r: (r / "character_profiles.json").write_text('{"阿福": ', encoding="utf-8"), "ends early"),
])
def test_bad_files_fail_with_one_line_naming_file_and_item(tmp_path, break_it, expected):
    root = write_charactereval(tmp_path / "ce")
    break_it(root)
    with pytest.raises((DataError, ConfigError)) as e:
        load(root)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg, msg


def test_predictions_for_items_cut_by_max_samples_are_not_unmatched(tmp_path):
    """A predictions file answering the whole benchmark, evaluated on a part of it: the rest joins the
    benchmark (counted apart), so answers.min_matched=1.0 passes; a row joining nothing still counts."""
    from rolecraft.evaluation.answers import join_predictions

    rows = [(f"p:{n}", {"key": s[0], "prediction": f"答{n}"}) for n, s in enumerate(SCENES[:10], 1)]
    b = load(write_charactereval(tmp_path / "ce"), max_samples=3)
    preds, stats = join_predictions(rows, b, "p", min_matched=1.0)
    assert preds == {"101": "答1", "102": "答2", "103": "答3"}  # integer ids join string keys
    assert stats == {"answers/matched": 3, "answers/missing": 0, "answers/unmatched": 0, "answers/outside_limit": 7}
    with pytest.raises(DataError, match="only 10 of 11 predictions"):
        join_predictions(rows + [("p:11", {"key": 999, "prediction": "?"})], b, "p", min_matched=1.0)
    # the same on a RoleInstruct benchmark, joined on (character, question) as RoleBench files are
    from omegaconf import OmegaConf

    from rolecraft.config import BenchmarkConfig
    from rolecraft.evaluation.benchmarks import load_benchmark

    demo = load_benchmark(OmegaConf.structured(BenchmarkConfig(max_samples=1)))
    every = [(f"d:{i}", {"character": it.character, "question": it.question, "prediction": "x"})
             for i, it in enumerate(demo.all_items)]
    _, stats = join_predictions(every, demo, "d", min_matched=0.9)
    assert stats["answers/unmatched"] == 0 and stats["answers/outside_limit"] > 0
    assert stats["answers/matched"] + stats["answers/outside_limit"] == len(every)


def test_group_averages_are_means_of_dimension_means():
    from rolecraft.evaluation.charactereval import summarise

    m = summarise({"Fluency": [1.0, 0.5], "Coherence": [0.25], "Empathy": [0.75], "Accuracy": []}, "x")
    assert m["x/fluency"] == 0.75 and m["x/n/fluency"] == 2 and "x/accuracy" not in m
    assert m["x/group/conversation"] == pytest.approx(0.5) and m["x/group/attractiveness"] == 0.75
    assert "x/group/character_consistency" not in m and m["x/avg"] == pytest.approx((0.75 + 0.25 + 0.75) / 3)


def test_dimension_groups_follow_the_paper():
    from rolecraft.evaluation.charactereval import DIMENSIONS

    groups: dict[str, set] = {}
    for d in DIMENSIONS.values():
        groups.setdefault(d.group, set()).add(d.name)
    assert groups == {"conversation": {"Fluency", "Coherence", "Consistency"},
                      "character_consistency": {"Exposure", "Accuracy", "Hallucination", "Behavior", "Utterance"},
                      "attractiveness": {"Humanlikeness", "Communication_skills", "Diversity", "Empathy"}}


# ---- end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_answers_scenes_with_the_embedded_model(tmp_path, cache_dir):
    root = write_charactereval(tmp_path / "ce")
    r = run_evaluate(["benchmark=charactereval", f"benchmark.root={root}", "benchmark.max_samples=8",
                      "generation.max_new_tokens=12"], cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["benchmark/items"] == 10 and m["benchmark/evaluated"] == 8 and m["benchmark/skipped/no_dimensions"] == 1
    assert m["charactereval/n/empathy"] == 3 and m["charactereval/n/fluency"] == 2
    assert m["charactereval/narration_lines"] == 2 and not any(k.startswith("rouge_l") for k in m)
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    assert len(rows) == 8 and all(isinstance(row["prediction"], str) for row in rows)
    assert rows[0]["charactereval"] == {"dimensions": ["Fluency", "Coherence", "Empathy"]}
    # the prompt the model saw: system, then the scene's turns, the role's own line as an assistant turn
    assert "<|im_start|>assistant\n（叹了口气）慢慢来，不着急。今天哪里不会？<|im_end|>" in rows[0]["prompt"]


def _predictions(path: Path) -> Path:
    """'GOOD' answers for the odd ids, 'meh' for the even ones, for all 10 scored items."""
    rows = [{"id": s[0], "prediction": ("GOOD " if s[0] % 2 else "meh ") + s[1]} for s in SCENES[:10]]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def server():
    from rolecraft.testing.fake_openai import FakeOpenAI

    key = "rc-test-" + uuid.uuid4().hex
    with FakeOpenAI(api_key=key) as srv:
        srv.key = key
        yield srv


def _judge_args(srv, tmp_path, root, preds, *extra):
    return ["benchmark=charactereval", f"benchmark.root={root}", "benchmark.max_samples=8", "answers=predictions",
            f"answers.path={preds}", "answers.min_matched=1.0", "judge=pointwise", "judge.model=fake-judge",
            f"judge.endpoint.base_url={srv.base_url}", f"judge.endpoint.api_key_env={KEY_ENV}",
            "judge.endpoint.backoff_base=0.05", f"paths.cache_dir={tmp_path / 'cache'}", *extra]


def _good_or_meh(text: str) -> int:
    return 5 if "GOOD" in text.split("The character's reply to score:")[1] else 2


@pytest.mark.slow
def test_pointwise_judge_scores_each_assigned_dimension(server, tmp_path, cache_dir):
    from rolecraft.evaluation.charactereval import DIMENSIONS
    from rolecraft.testing.fake_openai import rubric_responder

    server.responders["fake-judge"] = rubric_responder({"Fluency": 4, **{d: _good_or_meh for d in DIMENSIONS
                                                                          if d != "Fluency"}})
    root = write_charactereval(tmp_path / "ce")
    r = run_evaluate(_judge_args(server, tmp_path, root, _predictions(tmp_path / "p.jsonl")), cache_dir,
                     tmp_path / "ev", env={KEY_ENV: server.key})
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    # predictions for ids 109, 110 answer items max_samples cut: not unmatched, min_matched=1.0 holds
    assert m["answers/matched"] == 8 and m["answers/outside_limit"] == 2 and m["answers/unmatched"] == 0
    # items 101..108 carry 19 (item, dimension) pairs: one request each
    assert m["judge/verdicts"] == 19 and m["judge/failures"] == 0 and server.count("chat") == 19
    # hand-computed: GOOD (odd ids) scores 5 -> 1.0, meh (even ids) 2 -> 0.25, Fluency always 4 -> 0.75
    expected = {"fluency": 0.75, "coherence": 0.625, "consistency": 0.625, "exposure": 0.25, "accuracy": 0.625,
                "hallucination": 0.25, "behavior": 1.0, "utterance": 0.25, "humanlikeness": 1.0,
                "communication_skills": 0.25, "diversity": 0.25, "empathy": 0.75}
    for dim, v in expected.items():
        assert m[f"charactereval/judge/{dim}"] == pytest.approx(v), dim
    assert m["charactereval/judge/n/empathy"] == 3 and m["charactereval/judge/n/behavior"] == 1
    assert m["charactereval/judge/group/conversation"] == pytest.approx(2.0 / 3)
    assert m["charactereval/judge/group/character_consistency"] == pytest.approx(0.475)
    assert m["charactereval/judge/group/attractiveness"] == pytest.approx(0.5625)
    assert m["charactereval/judge/avg"] == pytest.approx(6.625 / 12)
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    assert rows[0]["charactereval"]["judge"] == {"Fluency": 4, "Coherence": 5, "Empathy": 5}
    sent = [q.body["messages"][1]["content"] for q in server.requests if q.endpoint == "chat"]
    assert any("Dimension: Empathy (共情度)" in s and "小周：数学那道应用题，我看不懂。" in s for s in sent)
    verdicts = read_jsonl(tmp_path / "ev" / "judge.jsonl")
    assert {v["dimension"] for v in verdicts} == set(DIMENSIONS) and all(v["scores"] for v in verdicts)


@pytest.mark.slow
def test_malformed_judge_replies_are_counted_and_max_failed_applies(server, tmp_path, cache_dir):
    from rolecraft.evaluation.charactereval import DIMENSIONS
    from rolecraft.testing.fake_openai import rubric_responder

    server.responders["fake-judge"] = rubric_responder({d: _good_or_meh for d in DIMENSIONS},
                                                       malformed=("Empathy",))
    root, preds = write_charactereval(tmp_path / "ce"), _predictions(tmp_path / "p.jsonl")
    r = run_evaluate(_judge_args(server, tmp_path, root, preds, "judge.max_attempts=2"), cache_dir,
                     tmp_path / "ev", env={KEY_ENV: server.key})
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    assert m["judge/failures"] == 3 and m["judge/verdicts"] == 19 and server.count("chat") == 16 + 3 * 2
    assert "charactereval/judge/empathy" not in m
    assert m["charactereval/judge/group/attractiveness"] == pytest.approx((1.0 + 0.25 + 0.25) / 3)
    # more failures than judge.max_failed allows: exit 2, one line, no metrics.json
    r = run_evaluate(_judge_args(server, tmp_path, root, preds, "judge.max_attempts=1", "judge.max_failed=0.1"),
                     cache_dir, tmp_path / "ev2", env={KEY_ENV: server.key})
    assert r.returncode == 2 and "3 of 19 verdicts failed" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "ev2" / "metrics.json").exists() and (tmp_path / "ev2" / "judge.jsonl").exists()


def _tiny_reward_model(out: Path, cache_dir) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForSequenceClassification

    from rolecraft.modeling.tiny import ensure_embedded

    tok = AutoTokenizer.from_pretrained(str(ensure_embedded("tiny", cache_dir)))
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, num_labels=1, pad_token_id=tok.pad_token_id)
    model = Qwen2ForSequenceClassification(cfg)
    with torch.no_grad():  # spread the outputs over about 0-1, as a trained reward model's are
        model.score.weight.normal_(0, 0.05)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_reward_model_scores_each_dimension(tmp_path, cache_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rolecraft.evaluation.charactereval import reward_input

    rm = _tiny_reward_model(tmp_path / "rm", cache_dir)
    root, preds = write_charactereval(tmp_path / "ce"), _predictions(tmp_path / "p.jsonl")
    r = run_evaluate(["benchmark=charactereval", f"benchmark.root={root}", "benchmark.max_samples=4",
                      "answers=predictions", f"answers.path={preds}", f"benchmark.reward_model={rm}", "device=cpu"],
                     cache_dir, tmp_path / "ev")
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_metrics(tmp_path / "ev")
    rows = read_jsonl(tmp_path / "ev" / "samples.jsonl")
    # items 101..104 carry 11 (item, dimension) pairs over 9 dimensions
    per = [(row["key"], d, s) for row in rows for d, s in row["charactereval"]["rm"].items()]
    assert len(per) == 11 and m["charactereval/rm/n/coherence"] == 2
    assert len(set(rows[0]["charactereval"]["rm"].values())) == 3  # the dimension is part of what it reads
    # the reported 0-1 score is the model's output clipped to 0-1; samples.jsonl keeps 1+4x (the 1-5 scale)
    unit = {d: [min(1.0, max(0.0, (s - 1) / 4)) for _, d2, s in per if d2 == d] for d in {d for _, d, _ in per}}
    for d, vals in unit.items():
        assert m[f"charactereval/rm/{d.lower()}"] == pytest.approx(sum(vals) / len(vals)), d
    assert m["charactereval/rm/clipped"] == sum(1 for _, _, s in per if not 1 <= s <= 5)
    # one score recomputed here from the documented input format
    tok = AutoTokenizer.from_pretrained(str(rm))
    model = AutoModelForSequenceClassification.from_pretrained(str(rm)).eval()
    row = rows[1]
    text = reward_input(PROFILES["林晚秋"], row["question"], row["prediction"], "言语一致性")
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        x = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    assert row["charactereval"]["rm"]["Utterance"] == pytest.approx(1 + 4 * x, abs=1e-4)
    # a reward model on another benchmark is refused before anything loads
    r = run_evaluate([f"benchmark.reward_model={rm}"], cache_dir, tmp_path / "ev2")
    assert r.returncode == 2 and "benchmark.reward_model is for benchmark=charactereval" in r.stderr
    # a path that is no model fails before any answer is made
    r = run_evaluate(["benchmark=charactereval", f"benchmark.root={root}", f"benchmark.reward_model={tmp_path}"],
                     cache_dir, tmp_path / "ev3")
    assert r.returncode == 2 and "not a model directory (no config.json)" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "ev3" / "samples.jsonl").exists()


def test_any_multi_turn_item_keeps_its_own_system_turn_and_speaker_names():
    """Both shapes of EvalItem.messages: a dialogue sample's turns before its question (with who asks
    it) and a CharacterEval scene (every turn up to the answer) give the same chat."""
    from rolecraft.evaluation.benchmarks import Benchmark, EvalItem, chats

    history = [{"role": "system", "content": "场景：沈家后院。"},
               {"role": "user", "content": "吃了吗？", "name": "少爷"},
               {"role": "assistant", "content": "还没呢。"}]
    sample = EvalItem("d1", "dialogue", "阿福", "那快去吃。", ["吃了。"], messages=history, speaker="少爷")
    scene = EvalItem("d2", "dialogue", "阿福", "少爷：那快去吃。", ["吃了。"],
                     messages=[*history, {"role": "user", "content": "少爷：那快去吃。"}], meta={"whole_scene": True})
    for chat in chats(Benchmark("x", [sample, scene], {"阿福": "身份：老仆人"})):
        assert chat[0]["role"] == "system" and chat[0]["content"].startswith("你是阿福。")
        assert chat[0]["content"].endswith("身份：老仆人\n场景：沈家后院。")
        assert chat[1:] == [{"role": "user", "content": "少爷：吃了吗？"}, {"role": "assistant", "content": "还没呢。"},
                            {"role": "user", "content": "少爷：那快去吃。"}]


@pytest.mark.slow
def test_an_endpoint_answers_from_the_same_multi_turn_chats(server, tmp_path, cache_dir):
    """answers=openai goes through the same chats as the local model: system turn, then the scene's turns."""
    root = write_charactereval(tmp_path / "ce")
    r = run_evaluate(["benchmark=charactereval", f"benchmark.root={root}", "benchmark.max_samples=4", "answers=openai",
                      "answers.model=fake-chat", f"answers.endpoint.base_url={server.base_url}",
                      f"answers.endpoint.api_key_env={KEY_ENV}", f"paths.cache_dir={tmp_path / 'cache'}"],
                     cache_dir, tmp_path / "ev", env={KEY_ENV: server.key})
    assert r.returncode == 0, r.stderr[-3000:]
    sent = {q.body["messages"][1]["content"]: q.body["messages"] for q in server.requests if q.endpoint == "chat"}
    assert len(sent) == 4 and read_metrics(tmp_path / "ev")["benchmark/evaluated"] == 4
    scene = sent["林母：秋儿，你又熬夜改作业了？"]
    assert [m["role"] for m in scene] == ["system", "user", "assistant", "user"]
    assert scene[0]["content"].startswith("你是林晚秋。") and "口头禅：慢慢来，不着急。" in scene[0]["content"]
    assert scene[2]["content"] == "妈，我不累。\n（给母亲倒了杯水）您先喝点水。"
    rows = {row["key"]: row for row in read_jsonl(tmp_path / "ev" / "samples.jsonl")}
    assert rows["103"]["prediction"].startswith("[fake-chat]") and rows["103"]["prediction"].endswith("你啊，总是这样。")
