"""Prompts, tokenization and batching on the demo data (no model training)."""

from __future__ import annotations

import re

import pytest

from rolecraft.data import resolve_data_root
from rolecraft.data.batching import StepBatchSampler, StepCollator
from rolecraft.data.mixing import evaluation_samples, training_samples
from rolecraft.data.prompts import PromptBuilder
from rolecraft.data.schema import EMOTION_ZH, load
from rolecraft.data.tokenize import IGNORE_INDEX, ChatEncoder


@pytest.fixture(scope="module")
def demo():
    return load(resolve_data_root("embedded:demo"))


def test_emotions_on_off_differ_exactly_in_labels(demo):
    sample = next(s for s in demo.samples if s.kind == "specific")
    on = PromptBuilder(demo, emotions=True, num_exemplars=6).messages(sample)[0]["content"]
    off = PromptBuilder(demo, emotions=False, num_exemplars=6).messages(sample)[0]["content"]
    labels = "|".join(EMOTION_ZH.values())
    assert re.findall(rf"（(?:{labels})）", on), "exemplars carry their labels when emotions are on"
    assert not re.findall(rf"（(?:{labels})）", off)
    stripped = re.sub(rf"（(?:{labels})）", "", on).replace("【台词示例（括号内为当时的情绪）】", "【台词示例】")
    assert stripped == off


def test_mixes(demo):
    kinds = lambda mix: {s.kind for s in training_samples(demo, mix)}
    assert kinds("general") == {"general"} and kinds("specific") == {"specific"}
    assert kinds("hybrid") == {"general", "specific"}
    hybrid = training_samples(demo, "hybrid", specific_ratio=0.25)
    share = sum(s.kind == "specific" for s in hybrid) / len(hybrid)
    assert share == pytest.approx(0.25, abs=0.01)
    assert training_samples(demo, "hybrid", seed=1) == training_samples(demo, "hybrid", seed=1)
    assert {s.kind for s in evaluation_samples(demo)} == {"raw", "general", "specific"}
    assert all(s.split == "test" for s in evaluation_samples(demo))


class _CharTok:
    """A character-level tokenizer with a ChatML template: enough to test label masking exactly."""

    eos_token = "<e>"
    template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}<e>\n{% endfor %}"
                "{% if add_generation_prompt %}<s>assistant\n{% endif %}")

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, chat_template=None):
        from jinja2 import Template

        return Template(chat_template or self.template).render(messages=messages, add_generation_prompt=add_generation_prompt)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


def test_labels_cover_only_the_answer_and_end_of_turn():
    enc = ChatEncoder(_CharTok(), max_source_length=1000, max_target_length=100)
    msgs = [{"role": "system", "content": "你是沈静。"}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "收到。完毕。"}]
    e = enc.encode(msgs)
    answer = "".join(chr(t) for t in e.labels if t != IGNORE_INDEX)
    assert answer == "收到。完毕。<e>\n"
    assert len(e.input_ids) == len(e.labels)
    assert "".join(chr(t) for t in e.input_ids).endswith("<s>assistant\n收到。完毕。<e>\n")


def test_truncation_is_explicit_and_counted():
    enc = ChatEncoder(_CharTok(), max_source_length=10, max_target_length=3)
    msgs = [{"role": "system", "content": "很长的人物设定" * 5}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "收到。完毕。"}]
    e = enc.encode(msgs, "s1")
    assert sum(t == IGNORE_INDEX for t in e.labels) == 10 and len(e.input_ids) == 13
    assert enc.truncated.prompts == 1 and enc.truncated.responses == 1 and enc.truncated.examples == ["s1"]


def test_step_batches_cover_ranks_disjointly_and_resume():
    lengths = [5, 9, 3, 7, 1, 8, 2, 6, 4, 10, 11, 12]
    s0 = StepBatchSampler(lengths, 3, seed=7, group_by_length=True, rank=0, world_size=2)
    s1 = StepBatchSampler(lengths, 3, seed=7, group_by_length=True, rank=1, world_size=2)
    b0, b1 = s0.epoch_batches(0), s1.epoch_batches(0)
    assert len(b0) == len(b1) == 2
    seen = [i for b in b0 + b1 for i in b]
    assert sorted(seen) == list(range(12))  # every sample once per epoch, no overlap
    plain = StepBatchSampler(lengths, 3, seed=7, group_by_length=False)
    assert plain.epoch_batches(1) != plain.epoch_batches(0)  # reshuffled each epoch
    resumed = StepBatchSampler(lengths, 3, seed=7, group_by_length=True, rank=0, world_size=2,
                               position=lambda: (0, 1))
    assert list(resumed) == b0[1:]  # mid-epoch resume skips the steps already taken


def test_collator_pads_dynamically_per_micro_batch():
    from rolecraft.data.tokenize import Encoded

    rows = [Encoded([1] * n, [IGNORE_INDEX] * (n - 2) + [1, 1]) for n in (3, 9, 4, 8)]
    batch = StepCollator(pad_id=0, micro_batch_size=2)(rows)
    widths = [m["input_ids"].shape[1] for m in batch["micro"]]
    assert widths == [9, 4]  # sorted by length: long rows together, short rows together
    assert batch["label_tokens"] == 8 and batch["tokens"] == 24
