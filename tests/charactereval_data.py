"""A small synthetic CharacterEval folder in the published file formats (our own invented scenes)."""

from __future__ import annotations

import json
from pathlib import Path

PROFILES = {
    "林晚秋": {"姓名": "林晚秋", "性别": "女", "身份": "青石巷小学的语文老师", "性格": "温柔、倔强、爱操心",
             "经历": "父亲早逝，独自照顾生病的母亲", "口头禅": "慢慢来，不着急。"},
    "沈砚": {"姓名": "沈砚", "性别": "男", "身份": "退隐江湖的剑客", "性格": "沉默寡言、重情义",
           "武功": ["归云剑法", "踏雪步"]},
    "阿福": {"姓名": "阿福", "身份": "沈家的老仆人", "性格": "憨厚、话多", "年龄": 58},
}

# id, role, novel, context lines (speaker：utterance; a line without the colon is narration)
SCENES = [
    (101, "林晚秋", "青石巷", ["小周：林老师，我作业又没写完。", "林晚秋：（叹了口气）慢慢来，不着急。今天哪里不会？",
                            "小周：数学那道应用题，我看不懂。"]),
    (102, "林晚秋", "青石巷", ["窗外下起了小雨，教室里很安静。", "校长：晚秋，明天的公开课准备得怎么样了？"]),
    (103, "林晚秋", "青石巷", ["林母：秋儿，你又熬夜改作业了？", "林晚秋：妈，我不累。", "林晚秋：（给母亲倒了杯水）您先喝点水。",
                            "林母：你啊，总是这样。"]),
    (104, "沈砚", "剑归", ["阿福：少爷，外面有人找您，说是当年的旧识。", "沈砚：（放下茶杯）让他进来。",
                         "来人一身黑衣，腰间挂着一柄断剑。", "黑衣人：沈兄，别来无恙？"]),
    (105, "沈砚", "剑归", ["黑衣人：十年了，你还肯拿起剑吗？"]),
    (106, "沈砚", "剑归", ["阿福：少爷，这雪下得真大，您的旧伤又疼了吧？", "阿福：我去给您熬碗姜汤。"]),
    (107, "阿福", "剑归", ["沈砚：阿福，你跟了我多少年了？"]),
    (108, "阿福", "剑归", ["沈砚：把那柄剑收起来吧。", "阿福：少爷，真的不练了吗？", "沈砚：不练了。"]),
    (109, "林晚秋", "青石巷", ["小周：老师，您为什么不去城里教书？"]),
    (110, "沈砚", "剑归", ["夜深了，院子里只剩下风声。", "阿福：少爷，您还不睡吗？"]),
    (111, "阿福", "剑归", ["沈砚：去把门关上。"]),  # not in id2metric: skipped and counted
]

METRICS = {
    "101": [["Fluency", "对话流利度"], ["Coherence", "对话连贯性"], ["Empathy", "共情度"]],
    "102": [["Accuracy", "知识准确率"], ["Utterance", "言语一致性"]],
    "103": [["Consistency", "对话一致性"], ["Behavior", "行为一致性"], ["Empathy", "共情度"]],
    "104": [["Exposure", "知识曝光度"], ["Hallucination", "知识幻觉性"], ["Coherence", "对话连贯性"]],
    "105": [["Fluency", "对话流利度"], ["Humanlikeness", "类人程度"]],
    "106": [["Communication_skills", "交流技巧"], ["Diversity", "表现多样性"], ["Empathy", "共情度"]],
    "107": [["Accuracy", "知识准确率"]],
    "108": [["Utterance", "言语一致性"], ["Consistency", "对话一致性"]],
    "109": [["Fluency", "对话流利度"], ["Behavior", "行为一致性"]],
    "110": [["Humanlikeness", "类人程度"], ["Coherence", "对话连贯性"]],
}


def write_charactereval(root: Path, scenes=None, profiles=None, metrics=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    items = [{"id": i, "role": role, "novel_name": novel, "context": "\n".join(lines)}
             for i, role, novel, lines in (SCENES if scenes is None else scenes)]
    (root / "test_data.jsonl").write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "character_profiles.json").write_text(json.dumps(PROFILES if profiles is None else profiles,
                                                             ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "id2metric.jsonl").write_text(json.dumps(METRICS if metrics is None else metrics, ensure_ascii=False,
                                                     indent=4), encoding="utf-8")
    return root
