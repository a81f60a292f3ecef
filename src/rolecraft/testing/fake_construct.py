"""Valid, deterministic answers to the construction prompts, for FakeOpenAI.

``FakeOpenAI(responder=construct_responder)`` (or ``python -m rolecraft.testing.fake_openai
--construct``) answers each stage's prompt the way a well-behaved model would, so every stage can
run end to end offline; faults (malformed JSON, the wrong number of labels ...) are injected on
top with ``Content``. The stage is read from the request's ``X-Rolecraft-Stage`` header, which
construction sends with every request (metadata outside the prompt, so the prompts and their journal
hashes stay what a real endpoint sees); each stage has its own answerer in ``ANSWERERS``. Emotions come from a small keyword lexicon: a weak but honest annotator whose agreement
with human gold labels (e.g. CPED) can be measured like any other.
"""

from __future__ import annotations

import hashlib
import json
import re

from rolecraft.testing.fake_openai import default_responder

# first match wins; the label names are the project's English ones
_LEXICON = (
    ("anger", ("滚", "混蛋", "气死", "凭什么", "闭嘴", "你敢", "少废话", "怎么搞的")),
    ("fear", ("害怕", "怕", "吓", "不敢", "担心", "完了", "咋个办", "怎么办")),
    ("sadness", ("难过", "哭", "伤心", "可怜", "舍不得", "对不起")),
    ("disgust", ("恶心", "讨厌", "烦死", "受不了")),
    ("frustration", ("唉", "算了", "没办法", "又", "累", "麻烦")),
    ("excitement", ("太好了", "要得", "快", "终于", "冲")),
    ("happiness", ("哈哈", "开心", "高兴", "好啊", "谢谢", "巴适", "不错")),
    ("surprise", ("啊？", "什么？", "真的吗", "居然", "竟然", "咋个")),
)
_LINE = re.compile(r"^\[(\d+)\] [^：]*：(.*)$")


def lexicon_label(text: str) -> str:
    for label, words in _LEXICON:
        if any(w in text for w in words):
            return label
    return "neutral"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:6]


def _user(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def _first_user(messages: list[dict]) -> str:
    for m in messages:
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def _annotate(messages: list[dict], system: str) -> str:
    lines = [m for m in (_LINE.match(ln) for ln in _first_user(messages).splitlines()) if m]
    return json.dumps([{"i": int(m.group(1)), "emotion": lexicon_label(m.group(2))} for m in lines],
                      ensure_ascii=False)


def _profile(messages: list[dict], system: str) -> str:
    user = _first_user(messages)
    name = re.search(r"^角色：(.*)$", user, re.M)
    fields = re.search(r"^需要填写的字段：(.*)$", user, re.M)
    who = name.group(1).strip() if name else "角色"
    out = {f: f"{who}的{f}（依据剧本设定，{_digest(who, f)}）" for f in (fields.group(1).split("、") if fields else [])}
    return json.dumps(out, ensure_ascii=False)


def _qa(messages: list[dict], system: str) -> str:
    user = _first_user(messages)
    n = int(re.search(r"请设计 (\d+) 个问题", user).group(1))
    who = re.search(r"^角色：(.*)$", user, re.M).group(1).strip()
    d = _digest(user)
    return json.dumps([{"question": f"{who}，第{i + 1}个问题（{d}）：你最近遇到的那件事后来怎么样了？",
                        "answer": f"哎，说起这个（{d}-{i + 1}），我到现在都还记得清清楚楚。"} for i in range(n)],
                      ensure_ascii=False)


def _general(messages: list[dict], system: str) -> str:
    who = re.search(r"你是(.+?)，", system)
    q = " ".join(_user(messages).split())[:24]
    return f"（{who.group(1) if who else '我'}）{q}？这个嘛，我看就照我的法子来，{_digest(q, str(len(messages)))}。"


# stage name (as in the construction stage table) -> answerer(messages, system prompt)
ANSWERERS = {"annotate": _annotate, "profile": _profile, "qa": _qa, "general": _general}
STAGE_HEADER = "x-rolecraft-stage"  # lower-cased, as FakeOpenAI passes request headers


def construct_responder(request: dict) -> str:
    """A valid answer for the stage named in the request's header; other requests get the default."""
    messages = request.get("messages") or []
    system = str(messages[0].get("content", "")) if messages and messages[0].get("role") == "system" else ""
    stage = (request.get("_headers") or {}).get(STAGE_HEADER)
    answer = ANSWERERS.get(stage or "")
    return answer(messages, system) if answer is not None else default_responder(request)
