"""Render a sample as chat messages: system = the character's profile and script exemplars,
user = the instruction, assistant = the reference answer.

``emotions`` switches only the labels of the exemplars (the paper's Table 5 ablation): the same
sample rendered with and without them differs exactly in the "（label）" prefixes.
"""

from __future__ import annotations

from rolecraft.data.schema import EMOTION_ZH, Character, RoleInstruct, Sample, Utterance


def pick_exemplars(lines: list[Utterance], names: set[str], n: int) -> list[Utterance]:
    """``n`` lines spoken by the character (under any of ``names``), evenly spread over its script."""
    own = [u for u in lines if u.speaker in names]
    if n <= 0 or not own:
        return []
    if len(own) <= n:
        return own
    step = len(own) / n
    return [own[int(i * step)] for i in range(n)]


def format_exemplar(u: Utterance, emotions: bool) -> str:
    if emotions and u.emotion:
        return f"（{EMOTION_ZH[u.emotion]}）{u.text}"
    return u.text


def system_prompt(character: Character, exemplars: list[Utterance], emotions: bool,
                  retrieved: list | None = None) -> str:
    name = character.name
    parts = [
        f"你是{name}。请完全以{name}的身份、语气和说话风格回答，不要说自己是AI或语言模型，回答简洁自然。",
        "【人物设定】",
        *(f"{k}：{v}" for k, v in character.profile.items()),
    ]
    if exemplars:
        parts.append("【台词示例（括号内为当时的情绪）】" if emotions else "【台词示例】")
        parts.extend(format_exemplar(u, emotions) for u in exemplars)
    if retrieved:
        parts.append("【与问题相关的台词和设定（括号内为当时的情绪）】" if emotions else "【与问题相关的台词和设定】")
        for p in retrieved:  # emotions=off strips the labels of retrieved lines too
            label = f"（{EMOTION_ZH[p.emotion]}）" if emotions and p.kind == "line" and p.emotion else ""
            parts.append(label + p.text)
    return "\n".join(parts)


class PromptBuilder:
    """Caches each character's system prompt; one builder per (dataset, emotions, n).

    With a ``retriever`` (rolecraft.retrieval) the exemplars are the passages most relevant to each
    question instead of lines evenly spread over the script, so the system prompt is per question.
    """

    def __init__(self, ds: RoleInstruct, emotions: bool, num_exemplars: int, retriever=None):
        self.ds, self.emotions, self.num_exemplars = ds, emotions, num_exemplars
        self.retriever = retriever
        self._system: dict[str, str] = {}

    def system(self, character: str, query: str | None = None) -> str:
        if self.retriever is not None and query is not None:
            return system_prompt(self.ds.characters[character], [], self.emotions,
                                 self.retriever.search(character, query))
        if character not in self._system:
            c = self.ds.characters[character]
            # sources sometimes spell the speaker differently from the character (profile name)
            names = {character, c.profile.get("名字", character), c.profile.get("name", character)}
            ex = pick_exemplars(self.ds.script_of(character), names, self.num_exemplars)
            self._system[character] = system_prompt(c, ex, self.emotions)
        return self._system[character]

    def messages(self, sample: Sample, answer: str | None = None) -> list[dict]:
        msgs = [
            {"role": "system", "content": self.system(sample.character, sample.instruction)},
            {"role": "user", "content": sample.instruction},
        ]
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs
