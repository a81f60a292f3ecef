"""The construction validators and templates, and the LLM-vs-gold annotation loop on real CPED rows."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, cli_env, shared_data
from rolecraft.construct import validate
from rolecraft.construct.validate import Invalid


def test_labels_accept_both_languages_and_a_code_fence():
    text = '```json\n[{"i": 1, "emotion": "愤怒"}, {"i": 2, "emotion": "neutral"}, {"i": 3, "emotion": "兴奋"}]\n```'
    assert validate.parse_labels(text, 3) == ["anger", "neutral", "excitement"]
    assert validate.parse_labels('好的：["快乐", "其他"]', 2) == ["happiness", "other"]


@pytest.mark.parametrize("text, n, why", [
    ('[{"i": 1, "emotion": "neutral"}]', 2, "你返回了 1 个标签"),
    ('[{"i": 2, "emotion": "neutral"}, {"i": 1, "emotion": "neutral"}]', 2, "应当是 1"),
    ('[{"i": 1, "emotion": "激动"}]', 1, "激动"),
    ('{"emotion": "neutral"}', 1, "数组"),
    ("not json at all", 1, "JSON"),
    ('[{"i": 1, "emotion": "neutral"},]', 1, "JSON"),
])
def test_labels_reject_what_cannot_be_aligned(text, n, why):
    with pytest.raises(Invalid, match=why):
        validate.parse_labels(text, n)


def test_profile_needs_every_field_non_empty():
    fields = ["名字", "年龄"]
    assert validate.parse_profile('{"名字": "甲", "年龄": "30岁", "爱好": "钓鱼"}', fields)["爱好"] == "钓鱼"
    with pytest.raises(Invalid, match="年龄"):
        validate.parse_profile('{"名字": "甲", "年龄": " "}', fields)


def test_qa_needs_the_exact_count_and_distinct_questions():
    pair = {"question": "你好吗？", "answer": "挺好。"}
    assert validate.parse_qa(json.dumps([pair, {**pair, "question": "你在哪？"}]), 2)[1][0] == "你在哪？"
    with pytest.raises(Invalid, match="正好 3 组"):
        validate.parse_qa(json.dumps([pair]), 3)
    with pytest.raises(Invalid, match="重复"):
        validate.parse_qa(json.dumps([pair, pair]), 2)
    with pytest.raises(Invalid, match="answer"):
        validate.parse_qa(json.dumps([{"question": "q"}]), 1)


def test_general_answers_stay_in_character_and_short():
    assert validate.parse_general("  哎呀，莫急噻。 ", 50) == "哎呀，莫急噻。"
    for bad in ("作为一个AI，我没有口味。", "I am a language model.", ""):
        with pytest.raises(Invalid):
            validate.parse_general(bad, 50)
    with pytest.raises(Invalid, match="太长"):
        validate.parse_general("好" * 51, 50)
    # talking about AI in character is fine; only claiming to be one is not
    for fine in ("人工智能？俺不懂那些洋玩意儿。", "我孙女天天跟那个AI助手聊天。"):
        assert validate.parse_general(fine, 50) == fine
    with pytest.raises(Invalid):
        validate.parse_general("我是人工智能助手，可以帮你。", 50)


def test_templates_have_both_sections_and_fill_every_placeholder():
    from rolecraft.construct.stages import STAGES
    from rolecraft.construct.templates import load_template, parse_template

    for stage in STAGES.values():
        t = load_template(stage.template)
        assert t.system.startswith("【任务：") and len(t.sha256) == 64
    with pytest.raises(ValueError, match="no construct/templates/nope.txt"):
        load_template("nope")
    t = load_template("qa")
    assert "5 个" in t.system_text(n=5)
    with pytest.raises(KeyError):
        t.user_text(character="甲")  # a missing value is an error, never an empty hole in the prompt
    with pytest.raises(ValueError, match="system"):
        parse_template("x", "### user\nhi")


@pytest.mark.slow
def test_llm_annotation_against_cped_gold_end_to_end(tmp_path):
    """Import real CPED rows, annotate them with the fake's lexicon annotator through construct.py,
    and score it against the human gold with `rolecraft data agreement`."""
    from rolecraft.testing.fake_construct import construct_responder
    from rolecraft.testing.fake_openai import FakeOpenAI

    src = shared_data("cped", "valid_split.csv")
    lines = src.read_text(encoding="utf-8-sig").splitlines()[:301]  # header + 300 utterances
    (tmp_path / "cped.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = cli_env(tmp_path / "cache")
    rc = [sys.executable, "-m", "rolecraft.cli"]
    r = subprocess.run([*rc, "data", "import", "cped", str(tmp_path / "cped.csv"), "--out", str(tmp_path / "gold"),
                        "--min-utterances", "5"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with FakeOpenAI(responder=construct_responder) as srv:
        r = subprocess.run([sys.executable, str(REPO / "construct.py"), "llm=local", f"llm.base_url={srv.base_url}",
                            "stage=annotate", "construct.annotate.overwrite=true", f"construct.input={tmp_path / 'gold'}",
                            f"construct.out={tmp_path / 'llm'}", f"construct.journal={tmp_path / 'j.sqlite'}",
                            f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([*rc, "data", "agreement", str(tmp_path / "gold"), str(tmp_path / "llm"), "--json",
                        str(tmp_path / "agreement.json")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "agreement.json").read_text(encoding="utf-8"))
    gold = [json.loads(x) for x in (tmp_path / "gold" / "script.jsonl").read_text(encoding="utf-8").splitlines()]
    llm = {u["id"]: u for u in map(json.loads, (tmp_path / "llm" / "script.jsonl").read_text(encoding="utf-8").splitlines())}
    # every gold utterance was relabelled by the model (its provenance says so)
    assert all(llm[u["id"]]["provenance"]["stage"] == "annotate" for u in gold)
    assert res["n_items"] == len(gold)
    assert res["accuracy"] == pytest.approx(sum(llm[u["id"]]["emotion"] == u["emotion"] for u in gold) / len(gold))
    assert -1.0 <= res["cohen_kappa"] <= 1.0


# ---- the stage table -----------------------------------------------------------------------


def test_every_stage_record_is_complete_and_the_table_orders_them():
    import inspect

    from rolecraft.config import ConstructSection
    from rolecraft.construct.main import stages_of
    from rolecraft.construct.stages import STAGES, Stage
    from rolecraft.construct.templates import load_template
    from rolecraft.testing.fake_construct import ANSWERERS

    assert list(STAGES) == ["annotate", "profile", "qa", "general"] == stages_of("all")
    assert stages_of("qa,annotate") == ["annotate", "qa"]  # the table's order, not the user's
    orders = [s.order for s in STAGES.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    for name, st in STAGES.items():
        assert isinstance(st, Stage) and st.name == name and st.summary
        assert list(inspect.signature(st.plan).parameters) == ["ds", "ctx"]
        assert callable(st.validate) and st.validate.__module__ == "rolecraft.construct.validate"
        assert load_template(st.template).name == st.template
        assert hasattr(ConstructSection(), st.config or st.name), f"{name}: no construct.{name} config section"
        assert name in ANSWERERS, f"{name}: the test fake cannot answer this stage"


def test_the_fake_answers_by_the_stage_header_not_by_prompt_text():
    from rolecraft.construct.stages import STAGES
    from rolecraft.construct.templates import load_template
    from rolecraft.testing.fake_construct import construct_responder
    from rolecraft.testing.fake_openai import default_responder

    t = load_template(STAGES["annotate"].template)
    user = t.user_text(character="甲", dialogue="d1", count=2, lines="[1] 甲：哈哈，开心\n[2] 乙：滚开")
    req = {"model": "m", "messages": [{"role": "system", "content": t.system_text()}, {"role": "user", "content": user}]}
    # without the header the prompt text alone does not select a stage
    assert construct_responder(req) == default_responder(req)
    labels = STAGES["annotate"].validate(construct_responder({**req, "_headers": {"x-rolecraft-stage": "annotate"}}), n=2)
    assert labels == ["happiness", "anger"]
    # the header wins over whatever the prompt says: an annotate prompt sent as "general" gets prose
    prose = construct_responder({**req, "_headers": {"x-rolecraft-stage": "general"}})
    assert STAGES["general"].validate(prose, max_chars=200) == prose and not prose.startswith("[")
