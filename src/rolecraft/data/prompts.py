"""The prompt, in one place: a sample as chat messages (system = the character's opening line,
profile and script exemplars; user = the instruction; assistant = the reference answer).

``emotions`` switches only the labels of the exemplars (the paper's Table 5 ablation): the same
sample rendered with and without them differs exactly in the "（label）" prefixes. The profile
rendering and the opening line exist only here; every other module that shows a profile or plays
a role calls them. ``PromptSpec`` is what a run records (prompt.yaml) so later evaluation and chat
render exactly the prompt it trained with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rolecraft.data.schema import EMOTION_ZH, Character, RoleInstruct, Sample, Utterance
from rolecraft.errors import ConfigError

# prompt wordings by name (prompt.template); a changed wording is a new entry, so a run that recorded
# "v1" keeps being evaluated with v1's text
TEMPLATES = {
    "v1": {
        "opening": "你是{name}。请完全以{name}的身份、语气和说话风格回答，不要说自己是AI或语言模型，回答简洁自然。",
        "profile": "【人物设定】",
        "exemplars": "【台词示例】",
        "exemplars_emotions": "【台词示例（括号内为当时的情绪）】",
        "retrieved": "【与问题相关的台词和设定】",
        "retrieved_emotions": "【与问题相关的台词和设定（括号内为当时的情绪）】",
        # a dialogue sample's own system turn (the scene), appended to the character prompt
        "scene": "【当前场景】",
    },
}


def template(name: str = "v1") -> dict:
    if name not in TEMPLATES:
        raise ConfigError(f"prompt.template={name!r}: use one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def profile_lines(profile: dict) -> list[str]:
    """A profile as "field：value" lines, in the profile's own order."""
    return [f"{k}：{v}" for k, v in profile.items()]


def render_profile(profile: dict, sep: str = "\n") -> str:
    return sep.join(profile_lines(profile))


def opening_line(name: str, template_name: str = "v1") -> str:
    """The role-play instruction every character prompt starts with."""
    return template(template_name)["opening"].format(name=name)


def role_messages(character: str | None, question: str, profile_text: str | None = None,
                  template_name: str = "v1") -> list[dict]:
    """The chat for a benchmark without RoleInstruct data: the opening line (+ a profile text)."""
    msgs = []
    if character:
        system = opening_line(character, template_name)
        if profile_text:
            system += "\n" + template(template_name)["profile"] + "\n" + profile_text
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": question})
    return msgs


def character_names(c: Character) -> set[str]:
    """The names a character's lines may carry: sources sometimes spell the speaker differently from
    the character (its profile's 名字/name)."""
    return {c.name, c.profile.get("名字", c.name), c.profile.get("name", c.name)}


def emotion_prefix(emotion: str | None, emotions: bool) -> str:
    """"（label）" for an annotated line when emotions are on, else ""; one rule for exemplars,
    retrieved lines and dialogue history."""
    return f"（{EMOTION_ZH[emotion]}）" if emotions and emotion else ""


def named(content: str, name: str | None) -> str:
    """A turn spoken by a named speaker as "name：content" (full-width colon, as in Chinese scripts and
    CharacterEval): chat templates drop a message's ``name``, so the name goes into the text."""
    return f"{name}：{content}" if name else content


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
    return emotion_prefix(u.emotion, emotions) + u.text


def system_prompt(character: Character, exemplars: list[Utterance], emotions: bool,
                  retrieved: list | None = None, template_name: str = "v1") -> str:
    t = template(template_name)
    parts = [opening_line(character.name, template_name), t["profile"], *profile_lines(character.profile)]
    if exemplars:
        parts.append(t["exemplars_emotions"] if emotions else t["exemplars"])
        parts.extend(format_exemplar(u, emotions) for u in exemplars)
    if retrieved:
        parts.append(t["retrieved_emotions"] if emotions else t["retrieved"])
        for p in retrieved:  # emotions=off strips the labels of retrieved lines too
            parts.append(emotion_prefix(p.emotion if p.kind == "line" else None, emotions) + p.text)
    return "\n".join(parts)


class PromptBuilder:
    """Caches each character's system prompt; one builder per (dataset, emotions, n).

    With a ``retriever`` (rolecraft.retrieval) the exemplars are the passages most relevant to each
    question instead of lines evenly spread over the script, so the system prompt is per question.
    """

    def __init__(self, ds: RoleInstruct, emotions: bool, num_exemplars: int, retriever=None,
                 template_name: str = "v1"):
        self.ds, self.emotions, self.num_exemplars = ds, emotions, num_exemplars
        self.retriever = retriever
        self.template_name = template_name
        template(template_name)  # an unknown name fails here, before any rendering
        self._system: dict[str, str] = {}

    @classmethod
    def from_spec(cls, ds: RoleInstruct, spec: "PromptSpec", retriever=None) -> "PromptBuilder":
        """The builder a prompt spec describes (``rolecraft.retrieval.index.prompt_builder`` adds the
        retriever the spec names)."""
        return cls(ds, spec.emotions, spec.num_exemplars, retriever, spec.template)

    def system(self, character: str, query: str | None = None) -> str:
        if self.retriever is not None and query is not None:
            return system_prompt(self.ds.characters[character], [], self.emotions,
                                 self.retriever.search(character, query), self.template_name)
        if character not in self._system:
            c = self.ds.characters[character]
            ex = pick_exemplars(self.ds.script_of(character), character_names(c), self.num_exemplars)
            self._system[character] = system_prompt(c, ex, self.emotions, template_name=self.template_name)
        return self._system[character]

    def messages(self, sample: Sample, answer: str | None = None) -> list[dict]:
        """The chat for ``sample`` (+ ``answer``): our system prompt, a dialogue sample's history, the
        instruction. A dialogue's own system turn (its scene) joins our system prompt; named user turns
        render as "name：content"; the returned messages carry role and content only."""
        system = self.system(sample.character, sample.instruction)
        history = list(sample.messages or [])
        if history and history[0]["role"] == "system":
            system += "\n" + template(self.template_name)["scene"] + "\n" + history.pop(0)["content"]
        msgs = [{"role": "system", "content": system}]
        msgs += [{"role": m["role"], "content": named(m["content"], m.get("name") if m["role"] == "user" else None)}
                 for m in history]
        msgs.append({"role": "user", "content": named(sample.instruction, sample.speaker)})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs


# ---- the prompt spec a run records ---------------------------------------------------------

# the keys of a prompt spec and the command-line spellings that set them
SPEC_OVERRIDES = ("prompt", "emotions", "retrieval")


@dataclass
class PromptSpec:
    emotions: bool = True
    num_exemplars: int = 6
    template: str = "v1"
    retrieval: dict = field(default_factory=lambda: {"backend": "none"})

    @classmethod
    def from_config(cls, prompt_cfg) -> "PromptSpec":
        from omegaconf import OmegaConf

        retrieval = prompt_cfg.retrieval
        if not isinstance(retrieval, dict):
            retrieval = OmegaConf.to_container(retrieval, resolve=True)
        return cls(bool(prompt_cfg.emotions), int(prompt_cfg.num_exemplars), str(prompt_cfg.template),
                   dict(retrieval))

    def as_dict(self) -> dict:
        from rolecraft.rundir import redact

        return redact(asdict(self))

    def differences(self, other: "PromptSpec") -> list[str]:
        """``key: mine -> theirs`` for every key that differs (retrieval compared as a whole)."""
        a, b = asdict(self), asdict(other)
        return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k]]


def template_sha256(spec: PromptSpec) -> str:
    """A hash of what the prompt code renders for a fixed probe character under ``spec``'s
    template, with and without emotions and retrieved passages: any change to the wording or the
    layout of the prompt changes it, whatever the data."""
    from types import SimpleNamespace as Passage  # duck-typed like retrieval's passages (no upward import)

    probe = Character("某人", {"名字": "某人", "性格": "开朗"})
    lines = [Utterance("p1", "某人", "d", 0, "某人", "你好。", "happiness"),
             Utterance("p2", "某人", "d", 1, "某人", "再见。", None)]
    passages = [Passage(kind="line", text="你好。", emotion="happiness"), Passage(kind="fact", text="性格：开朗", emotion=None)]
    rendered = [system_prompt(probe, ex, emo, ret, spec.template)
                for emo in (True, False) for ex, ret in ((lines, None), ([], passages))]
    rendered.append(json.dumps(role_messages("某人", "问题", "性格：开朗", spec.template), ensure_ascii=False))
    return hashlib.sha256("\x00".join(rendered).encode("utf-8")).hexdigest()


def spec_record(spec: PromptSpec) -> dict:
    """prompt.yaml's content: the spec and the hash of its rendered template."""
    return {**spec.as_dict(), "template_sha256": template_sha256(spec)}


def write_spec(out, spec: PromptSpec) -> None:
    import yaml

    from rolecraft.fileio import write_text
    from rolecraft.rundir import PROMPT

    write_text(Path(out) / PROMPT, yaml.safe_dump(spec_record(spec), allow_unicode=True, sort_keys=False))


def recorded_spec(run_dir) -> tuple[PromptSpec, str | None]:
    """The prompt spec a run recorded, and its template hash (None for runs before prompt.yaml:
    their spec is rebuilt from config.yaml's keys of that time)."""

    from rolecraft.rundir import PROMPT, read_config

    p = Path(run_dir) / PROMPT
    if p.is_file():
        from rolecraft.fileio import read_yaml

        rec = read_yaml(p) or {}
        sha = rec.pop("template_sha256", None)
        known = {k: rec[k] for k in ("emotions", "num_exemplars", "template", "retrieval") if k in rec}
        return PromptSpec(**known), sha
    cfg = read_config(run_dir)
    if "prompt" in cfg:
        pc = cfg["prompt"]
        return PromptSpec(pc.get("emotions", True), pc.get("num_exemplars", 6), pc.get("template", "v1"),
                          pc.get("retrieval") or {"backend": "none"}), None
    # the layout before the prompt group: emotions.enabled, data.num_exemplars, retrieval
    return PromptSpec(bool((cfg.get("emotions") or {}).get("enabled", True)),
                      int((cfg.get("data") or {}).get("num_exemplars", 6)), "v1",
                      cfg.get("retrieval") or {"backend": "none"}), None


def resolve_spec(recorded: PromptSpec, typed: PromptSpec, typed_keys: set[str]) -> tuple[PromptSpec, list[str]]:
    """The recorded spec with the keys typed on the command line taken from ``typed``; returns it
    and the differences the typed keys made (to report)."""
    out = PromptSpec(**asdict(recorded))
    if "emotions" in typed_keys or "prompt.emotions" in typed_keys:
        out.emotions = typed.emotions
    if "prompt.num_exemplars" in typed_keys:
        out.num_exemplars = typed.num_exemplars
    if "prompt.template" in typed_keys:
        out.template = typed.template
    if any(k == "retrieval" or k.startswith(("retrieval.", "prompt.retrieval")) for k in typed_keys):
        out.retrieval = typed.retrieval
    return out, recorded.differences(out)


def typed_override_keys() -> set[str]:
    """The keys typed on this Hydra run's command line (``emotions``, ``prompt.num_exemplars`` …)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - not inside a Hydra run (composed by hand in tests)
        return set()
    keys = set()
    for o in overrides:
        k = o.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
        keys.add(k)
    return keys
