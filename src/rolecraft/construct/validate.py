"""Strict checks of every answer. An answer that fails raises :class:`Invalid`, whose message is
sent back to the model when it is re-asked (so it is written to the model, in Chinese) and is
recorded in the failure report when the tries run out. Nothing is guessed or silently dropped.
"""

from __future__ import annotations

import json
import re

from rolecraft.api.reask import Invalid  # noqa: F401 - the one re-ask loop's exception, re-exported
from rolecraft.data.schema import EMOTION_ZH

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
# a role-play answer that identifies itself as an AI (talking ABOUT AI, in character, is fine)
_AI_TELLS = re.compile(
    r"(作为|我是|我只是|我就是|身为)(一个|一名|个)?(AI|人工智能|语言模型|大模型|聊天机器人|虚拟助手|智能助手|AI助手|AI 助手)"
    r"|\bas an AI\b|\bI(?: am|'m) (?:an AI|a language model|an artificial intelligence|a virtual assistant)"
    r"|\bas a language model\b", re.IGNORECASE)



def extract_json(text: str, kind: type):
    """The JSON value of ``kind`` (list or dict) in an answer, tolerating a code fence around it."""
    s = _FENCE.sub("", text.strip())
    try:
        value = json.loads(s)
    except ValueError:
        opener, closer = ("[", "]") if kind is list else ("{", "}")
        a, b = s.find(opener), s.rfind(closer)
        if a < 0 or b <= a:
            raise Invalid(f"回答里没有找到 JSON {'数组' if kind is list else '对象'}，请只输出 JSON。") from None
        try:
            value = json.loads(s[a:b + 1])
        except ValueError as e:
            raise Invalid(f"JSON 无法解析（{e.msg}，第 {e.pos} 个字符附近），请输出合法的 JSON。") from None
    if not isinstance(value, kind):
        raise Invalid(f"应当输出一个 JSON {'数组' if kind is list else '对象'}，而不是 {type(value).__name__}。")
    return value


def normalise_label(label: object) -> str | None:
    """An annotator's label: one of the ten by English or Chinese name (a trailing full stop is
    tolerated); aliases are not accepted from a model being asked for the label set."""
    from rolecraft.data.emotions import normalise_emotion

    if not isinstance(label, str):
        return None
    return normalise_emotion(label.strip().strip("。."), aliases=False)


def parse_labels(text: str, n: int) -> list[str]:
    """Exactly ``n`` labels, element i for utterance [i]."""
    items = extract_json(text, list)
    if len(items) != n:
        raise Invalid(f"共有 {n} 条台词，你返回了 {len(items)} 个标签；请为每条台词各标一个，正好 {n} 个。")
    labels = []
    for pos, item in enumerate(items, start=1):
        if isinstance(item, dict):
            idx, raw = item.get("i", item.get("index", pos)), item.get("emotion", item.get("label"))
        else:
            idx, raw = pos, item
        if idx != pos and str(idx) != str(pos):
            raise Invalid(f"第 {pos} 个元素的编号是 {idx!r}，应当是 {pos}；请按台词顺序从 1 编号。")
        label = normalise_label(raw)
        if label is None:
            raise Invalid(f"第 {pos} 条台词的标签 {raw!r} 不在 10 个标签中（{'、'.join(EMOTION_ZH.values())}）。")
        labels.append(label)
    return labels


def parse_profile(text: str, fields: list[str]) -> dict[str, str]:
    obj = extract_json(text, dict)
    missing = [f for f in fields if not isinstance(obj.get(f), str) or not obj[f].strip()]
    if missing:
        raise Invalid(f"这些字段缺失或为空：{'、'.join(missing)}；每个字段都要填写字符串内容。")
    return {k: v.strip() for k, v in obj.items() if isinstance(v, str) and v.strip()}


def parse_qa(text: str, n: int) -> list[tuple[str, str]]:
    items = extract_json(text, list)
    if len(items) != n:
        raise Invalid(f"需要正好 {n} 组问答，你给了 {len(items)} 组。")
    pairs, seen = [], set()
    for pos, item in enumerate(items, start=1):
        q = item.get("question") if isinstance(item, dict) else None
        a = item.get("answer") if isinstance(item, dict) else None
        if not isinstance(q, str) or not q.strip() or not isinstance(a, str) or not a.strip():
            raise Invalid(f"第 {pos} 组缺少非空的 \"question\" 或 \"answer\"。")
        if q.strip() in seen:
            raise Invalid(f"第 {pos} 个问题与前面的问题重复了。")
        seen.add(q.strip())
        pairs.append((q.strip(), a.strip()))
    return pairs


def parse_general(text: str, max_chars: int) -> str:
    s = text.strip()
    if not s:
        raise Invalid("回答是空的。")
    if _AI_TELLS.search(s):
        raise Invalid("你是角色本人，回答里不能说自己是人工智能、AI、语言模型或助手；请以角色的身份重新回答。")
    if len(s) > max_chars:
        raise Invalid(f"回答太长（{len(s)} 字），请以角色的口吻简短回答，不超过 {max_chars} 字。")
    return s
