"""Engines: chats in, answers out, in batch or as a stream.

``LocalEngine`` wraps a loaded transformers model (a base, or a base + LoRA adapter): the chat
template turns chats into token ids (left-truncated to ``max_source_length`` and counted), and
``generate`` decodes them (shared prefixes, continuous batching). ``EndpointEngine`` sends the same
chats to an OpenAI-compatible endpoint through ``rolecraft.api.Endpoint`` (the project's retry
policy and answer cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from rolecraft.errors import DataError


@dataclass
class Answered:
    texts: list[str]
    # what was sent, per chat, where the engine renders it (the templated prompt of a local model)
    prompts: list[str | None]
    # generation_seconds, truncated_prompts, api_* counts
    stats: dict = field(default_factory=dict)


class LocalEngine:
    """A transformers model on one device, picked once (``inference.device.pick_device``)."""

    def __init__(self, model, tokenizer, model_cfg, device: str | None = None, max_source_length: int = 1024,
                 accelerator: str | None = None):
        from rolecraft.data.tokenize import ChatEncoder
        from rolecraft.inference.device import pick_device
        from rolecraft.modeling.base import stop_token_ids

        self.model, self.tok, self.model_cfg = model, tokenizer, model_cfg
        self.device = pick_device(device, accelerator)
        if str(next(model.parameters()).device) != self.device:
            model.to(self.device)
        self.encoder = ChatEncoder(tokenizer, max_source_length, 0, model_cfg.chat_template)
        self.stop_ids = stop_token_ids(tokenizer, model_cfg)

    def prompt_ids(self, chat: list[dict], key: str = "") -> list[int]:
        return self.encoder.prompt_ids(chat, key)

    def answer(self, chats: Sequence[list[dict]], gen_cfg, batch_size: int = 16, seed: int = 0,
               keys: Sequence[str] | None = None, progress: bool = False) -> Answered:
        from rolecraft.inference.generate import generate

        before = self.encoder.truncated.prompts
        keys = list(keys) if keys is not None else [""] * len(chats)
        ids = [self.prompt_ids(c, k) for c, k in zip(chats, keys)]
        t0 = time.perf_counter()
        texts = generate(self.model, self.tok, ids, gen_cfg, self.stop_ids, batch_size=batch_size, seed=seed,
                         progress=progress)
        stats = {"generation_seconds": round(time.perf_counter() - t0, 3),
                 "truncated_prompts": self.encoder.truncated.prompts - before}
        prompts = [self.tok.decode(p, skip_special_tokens=False) for p in ids]
        return Answered(texts, prompts, stats)

    def stream(self, chat: list[dict], gen_cfg, seed: int | None = None) -> Iterator[str]:
        """One answer, piece by piece as tokens are decoded (transformers' TextIteratorStreamer)."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        if seed is not None:
            torch.manual_seed(seed)
        ids = torch.tensor([self.prompt_ids(chat)], device=self.device)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.stop_ids[0]
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                      max_new_tokens=gen_cfg.max_new_tokens, do_sample=gen_cfg.do_sample, eos_token_id=self.stop_ids,
                      pad_token_id=pad, repetition_penalty=gen_cfg.repetition_penalty)
        if gen_cfg.do_sample:
            kwargs.update(top_p=gen_cfg.top_p, temperature=gen_cfg.temperature)
        failure: list[BaseException] = []

        def work():
            try:
                self.model.generate(**kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                failure.append(e)
                streamer.end()  # or the loop below would wait for tokens forever

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise failure[0]


def _sampling(gen_cfg) -> dict:
    if gen_cfg.do_sample:
        return {"temperature": gen_cfg.temperature, "top_p": gen_cfg.top_p, "max_tokens": gen_cfg.max_new_tokens}
    return {"temperature": 0.0, "top_p": None, "max_tokens": gen_cfg.max_new_tokens}


class EndpointEngine:
    """An OpenAI-compatible chat endpoint, with the project's retries, limits and cache."""

    def __init__(self, endpoint, model: str):
        self.endpoint, self.model = endpoint, model

    def answer(self, chats: Sequence[list[dict]], gen_cfg, batch_size: int = 0, seed: int = 0,
               keys: Sequence[str] | None = None, progress: bool = False) -> Answered:
        t0 = time.perf_counter()
        results = self.endpoint.chat_many(self.model, list(chats), desc="answers", **_sampling(gen_cfg))
        failed = [r for r in results if r.error]
        if failed:
            raise DataError(f"answers.endpoint: {len(failed)} of {len(results)} requests failed (the other answers "
                            f"are cached: a rerun retries only these); first: {failed[0].error}")
        s = self.endpoint.stats
        stats = {"generation_seconds": round(time.perf_counter() - t0, 3), "api_requests": s.requests,
                 "api_cached": s.cached, "api_retries": s.retries, "api_prompt_tokens": s.prompt_tokens,
                 "api_completion_tokens": s.completion_tokens}
        return Answered([(r.content or "").strip() for r in results], [None] * len(results), stats)

    def stream(self, chat: list[dict], gen_cfg, seed: int | None = None) -> Iterator[str]:
        yield from self.endpoint.stream_chat(self.model, chat, **_sampling(gen_cfg))
