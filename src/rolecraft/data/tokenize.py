"""Chat-template tokenization with response-only labels and explicit, counted truncation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

IGNORE_INDEX = -100
# which assistant turns of a multi-turn chat carry labels (torchtune's train_on_assistant / train_on_last)
LOSS_POLICIES = ("all", "last")


@dataclass
class Encoded:
    # lists when encoded in this process; read-only int32 NumPy views when loaded from the encoding cache
    input_ids: Sequence[int]
    labels: Sequence[int]


@dataclass
class TruncationCounts:
    prompts: int = 0
    responses: int = 0
    examples: list[str] = field(default_factory=list)  # ids of the first few truncated samples
    # loss=all where no earlier answer could be placed (a template that re-renders earlier turns so that
    # their text is not in the chat any more): those samples train on their last answer only
    last_only: int = 0

    def note(self, sample_id: str) -> None:
        if len(self.examples) < 5 and sample_id not in self.examples:
            self.examples.append(sample_id)


class ChatEncoder:
    """Turns messages into token ids with the tokenizer's chat template (or an override)."""

    def __init__(self, tokenizer, max_source_length: int, max_target_length: int,
                 chat_template: str | None = None, end_ids: list[int] | None = None):
        self.tok = tokenizer
        # tokens that end an answer (eos and the preset's stop tokens): a template whose answers carry
        # none of them (GLM-4: the next <|user|> ends a turn) gets eos appended, or the model never learns to stop
        self.eos_id = getattr(tokenizer, "eos_token_id", None)
        self.end_ids = set(end_ids) if end_ids else ({self.eos_id} - {None})
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.template = chat_template
        self.truncated = TruncationCounts()

    def render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt,
            chat_template=self.template,
        )

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict], sample_id: str = "") -> list[int]:
        """The generation prompt (system + user + assistant header), left-truncated if too long."""
        ids = self._ids(self.render(messages, add_generation_prompt=True))
        if len(ids) > self.max_source_length:
            self.truncated.prompts += 1
            self.truncated.note(sample_id)
            ids = ids[-self.max_source_length:]
        return ids

    def _answer_ids(self, answer_text: str, sample_id: str) -> list[int]:
        """A trained answer's ids: eos appended where the template ends it with no stop token, cut to
        max_target_length (counted)."""
        answer = self._ids(answer_text)
        if self.end_ids and not self.end_ids.intersection(answer) and self.eos_id is not None:
            answer.append(self.eos_id)
        if len(answer) > self.max_target_length:
            self.truncated.responses += 1
            self.truncated.note(sample_id)
            answer = answer[: self.max_target_length]
        return answer

    def encode(self, messages: list[dict], sample_id: str = "", loss: str = "last") -> Encoded:
        """Prompt + answer; labels cover only the answer and the template's end-of-turn tokens.

        ``loss="all"`` labels every assistant turn of a multi-turn chat, each cut at the template's
        own turn boundaries (the chat up to a turn, rendered with the generation prompt, is a prefix
        of the chat with that turn), so each trained turn is tokenized as generation would see it.
        A template that re-renders earlier turns: see ``_located_segments``. The context before the
        last answer is left-truncated to max_source_length as one prompt."""
        if loss not in LOSS_POLICIES:
            raise ValueError(f"loss={loss!r}: use one of {', '.join(LOSS_POLICIES)}")
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if loss == "all" and len(turns) > 1:
            enc = self._encode_all(messages, turns, sample_id)
            if enc is not None:
                return enc
            self.truncated.last_only += 1
        return self._encode_last(messages, sample_id)

    def _encode_all(self, messages: list[dict], turns: list[int], sample_id: str) -> Encoded | None:
        segments = self._prefix_segments(messages, turns) or self._located_segments(messages, turns)
        return self._tokenize_segments(segments, sample_id) if segments else None

    def _prefix_segments(self, messages: list[dict], turns: list[int]) -> list[tuple[str, bool]] | None:
        """(text, trained) segments: context, answer, context, answer ... cut where the template's own
        renderings end; None where a rendering is not a prefix of the next (the template re-renders
        earlier turns)."""
        segments: list[tuple[str, bool]] = []
        done = ""
        for i in turns:
            prompt = self.render(messages[:i], add_generation_prompt=True)
            full = self.render(messages[:i + 1], add_generation_prompt=False)
            if not prompt.startswith(done) or not full.startswith(prompt):
                return None
            segments += [(prompt[len(done):], False), (full[len(prompt):], True)]
            done = full
        return segments

    def _located_segments(self, messages: list[dict], turns: list[int]) -> list[tuple[str, bool]] | None:
        """For a template that re-renders earlier turns (Qwen3 drops the empty think block of earlier
        answers): the generation prompt of the last answer as inference renders it, with each earlier
        answer found in it by walking the turns' contents in order (so a line that also sits among the
        system prompt's exemplars is not mistaken for it), plus the stop token the template writes right
        after; then the last answer as the template renders it. None where a content is not found."""
        last = turns[-1]
        prompt = self.render(messages[:last], add_generation_prompt=True)
        full = self.render(messages[:last + 1], add_generation_prompt=False)
        if not full.startswith(prompt):
            return None
        stops = [t for t in (self.tok.convert_ids_to_tokens(i) for i in sorted(self.end_ids)) if isinstance(t, str)]
        segments: list[tuple[str, bool]] = []
        cursor = done = 0
        for i, m in enumerate(messages[:last]):
            pos = prompt.find(m["content"], cursor)
            if pos < 0:
                return None
            cursor = pos + len(m["content"])
            if i in turns:
                end = cursor + next((len(t) for t in stops if prompt.startswith(t, cursor)), 0)
                segments += [(prompt[done:pos], False), (prompt[pos:end], True)]
                cursor = done = end
        return segments + [(prompt[done:], False), (full[len(prompt):], True)]

    def _tokenize_segments(self, segments: list[tuple[str, bool]], sample_id: str) -> Encoded:
        """Each segment tokenized on its own (a trained answer as generation produces it); labels on the
        trained ones; the context before the last answer left-truncated to max_source_length."""
        ids: list[int] = []
        labels: list[int] = []
        last = len(segments) - 1
        for n, (text, trained) in enumerate(segments):
            if not trained:
                part = self._ids(text) if text else []
                ids += part
                labels += [IGNORE_INDEX] * len(part)
                continue
            if n == last:  # the context before the last answer is the prompt: left-truncated as one
                if len(ids) > self.max_source_length:
                    self.truncated.prompts += 1
                    self.truncated.note(sample_id)
                    ids, labels = ids[-self.max_source_length:], labels[-self.max_source_length:]
            part = self._answer_ids(text, sample_id)
            ids += part
            labels += part
        return Encoded(input_ids=ids, labels=labels)

    def _encode_last(self, messages: list[dict], sample_id: str) -> Encoded:
        prompt_text = self.render(messages[:-1], add_generation_prompt=True)
        full_text = self.render(messages, add_generation_prompt=False)
        if full_text.startswith(prompt_text):
            answer_text = full_text[len(prompt_text):]
        else:  # templates that re-render earlier turns differently: answer + eos
            answer_text = messages[-1]["content"] + (self.tok.eos_token or "")
        prompt = self.prompt_ids(messages[:-1], sample_id)
        answer = self._answer_ids(answer_text, sample_id)
        return Encoded(input_ids=prompt + answer, labels=[IGNORE_INDEX] * len(prompt) + answer)
