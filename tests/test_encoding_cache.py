"""The encoding cache (data/encoding.py): a second encoding of the same inputs encodes nothing and
gives the same rows and truncation counts; a change to the chat template, the prompt spec, the
encoder settings or the data encodes again. On the embedded demo data and the tiny model's tokenizer."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO
from rolecraft.data import resolve_data_root, schema
from rolecraft.data.encoding import encode_splits
from rolecraft.data.prompts import PromptBuilder, PromptSpec
from rolecraft.data.tokenize import ChatEncoder


@pytest.fixture(scope="module")
def setup(cache_dir):
    from hydra import compose, initialize_config_dir

    from rolecraft.config import register
    from rolecraft.modeling.base import load_tokenizer, resolve_base

    register("train_schema")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train")
    tok = load_tokenizer(resolve_base(cfg.model, str(cache_dir)), cfg.model)
    ds = schema.load(resolve_data_root("embedded:demo"))
    return ds, tok


class Counting:
    """The per-sample encode training uses, counting its calls."""

    def __init__(self, ds, tok, spec: PromptSpec, template: str | None = None, max_source: int = 96):
        self.encoder = ChatEncoder(tok, max_source, 24, template)
        self.prompts = PromptBuilder.from_spec(ds, spec)
        self.calls = 0

    def __call__(self, s):
        self.calls += 1
        return self.encoder.encode(self.prompts.messages(s, s.references[0]), s.id)


def encode(ds, tok, samples, cache, spec=None, **kw):
    spec = spec or PromptSpec()
    enc = Counting(ds, tok, spec, **kw)
    train, val = encode_splits(ds, {"train": samples, "val": samples[:3]}, enc, enc.encoder, spec, cache)
    return enc, train, val


def rows(encoded):
    return [(list(r.input_ids), list(r.labels)) for r in encoded]  # NumPy rows from the cache, lists in memory


def test_second_run_encodes_nothing_and_keeps_truncation_counts(setup, tmp_path):
    ds, tok = setup
    samples = [s for s in ds.samples if s.split == "train"]
    first, train1, val1 = encode(ds, tok, samples, tmp_path)
    assert first.calls == len(samples) + 3
    assert first.encoder.truncated.prompts > 0 and first.encoder.truncated.responses > 0  # short limits: both cut
    second, train2, val2 = encode(ds, tok, samples, tmp_path)
    assert second.calls == 0  # a hit: nothing rendered or tokenized
    assert rows(train2) == rows(train1) and rows(val2) == rows(val1)
    t1, t2 = first.encoder.truncated, second.encoder.truncated
    assert (t2.prompts, t2.responses) == (t1.prompts, t1.responses) and t2.examples == t1.examples
    uncached, train3, _ = encode(ds, tok, samples, None)  # no cache dir: the same rows, encoded in place
    assert uncached.calls == len(samples) + 3 and rows(train3) == rows(train1)


def test_cached_rows_are_views_of_the_file_and_batch_as_the_in_memory_rows(setup, tmp_path):
    import torch

    from rolecraft.data.batching import StepCollator

    ds, tok = setup
    samples = [s for s in ds.samples if s.split == "train"][:12]
    _, cached, _ = encode(ds, tok, samples, tmp_path)
    _, in_memory, _ = encode(ds, tok, samples, None)
    r = cached[0].input_ids
    # a hit copies nothing: read-only int32 views of the memory-mapped Arrow buffers
    assert r.dtype.name == "int32" and not r.flags.writeable and not r.flags.owndata
    for packing in (False, True):
        collate = StepCollator(tok.pad_token_id, 2, packing=packing, pack_length=256)
        a, b = collate(list(cached[:6])), collate(list(in_memory[:6]))
        assert (a["tokens"], a["label_tokens"]) == (b["tokens"], b["label_tokens"])
        for ma, mb in zip(a["micro"], b["micro"], strict=True):
            assert ma.keys() == mb.keys()
            for k in ma:  # the loss needs int64 labels, whatever the rows hold
                assert ma[k].dtype == torch.long and torch.equal(ma[k], mb[k]), (packing, k)


@pytest.mark.parametrize("change", ["chat_template", "emotions", "num_exemplars", "max_source_length", "data"])
def test_a_changed_input_encodes_again(setup, tmp_path, change):
    ds, tok = setup
    samples = [s for s in ds.samples if s.split == "train"][:8]
    base, train1, _ = encode(ds, tok, samples, tmp_path)
    kw: dict = {}
    spec = PromptSpec()
    if change == "chat_template":
        kw["template"] = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}<assistant>{% endif %}")
    elif change == "emotions":
        spec = dataclasses.replace(spec, emotions=False)
    elif change == "num_exemplars":
        spec = dataclasses.replace(spec, num_exemplars=2)
    elif change == "max_source_length":
        kw["max_source"] = 64
    else:
        samples = [dataclasses.replace(samples[0], instruction=samples[0].instruction + "？"), *samples[1:]]
    again, train2, _ = encode(ds, tok, samples, tmp_path, spec=spec, **kw)
    assert again.calls == len(samples) + 3, change
    assert rows(train2) != rows(train1)
    hit, train3, _ = encode(ds, tok, samples, tmp_path, spec=spec, **kw)  # and that new key hits in turn
    assert hit.calls == 0 and rows(train3) == rows(train2)


CONCURRENT = """
import sys, time
from rolecraft.data.encoding import encode_split
from rolecraft.data.tokenize import Encoded, TruncationCounts
class S:
    def __init__(self, i): self.id = str(i)
calls = []
def encode(s):
    calls.append(s.id)
    time.sleep(0.002)  # long enough for the other process to arrive while this one builds
    return Encoded(list(range(int(s.id) % 7 + 1)), [-100] * (int(s.id) % 7 + 1))
r = encode_split([S(i) for i in range(300)], encode, TruncationCounts(), data_fingerprint="d", key={}, cache_dir=sys.argv[1])
assert [list(x.input_ids) for x in r.rows] == [list(range(i % 7 + 1)) for i in range(300)]
print(len(calls), r.hit)
"""


@pytest.mark.slow
def test_concurrent_runs_build_once(tmp_path):
    """Two processes (DDP ranks, parallel runs) on the same inputs: one encodes, the other waits and loads."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = sorted(p.communicate(timeout=300)[0].split() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outs == [["0", "True"], ["300", "False"]], outs
    assert len(list((tmp_path / "encoded").glob("*.arrow"))) == 1
