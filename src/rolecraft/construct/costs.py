"""Token estimates and prices, for ``dry_run`` and the end-of-run accounting."""

from __future__ import annotations

import math
from pathlib import Path

# USD per 1M (prompt, completion) tokens: OpenAI list prices. Another model: llm.price_input/_output.
PRICES = {
    "gpt-4": (30.0, 60.0),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-3.5-turbo": (0.5, 1.5),
}


def read_price_table(path: str) -> dict[str, tuple[float, float]]:
    """A price table file: ``{model: {input: USD per 1M, output: USD per 1M}}`` in YAML or JSON."""
    from omegaconf import OmegaConf

    from rolecraft.errors import ConfigError

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"llm.prices_file={path!r}: no such file; give a YAML/JSON file of "
                          f"{{model: {{input: USD per 1M tokens, output: ...}}}}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(p))
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line
        raise ConfigError(f"{p}: not YAML/JSON ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: must map model names to {{input: ..., output: ...}}")
    table = {}
    for model, entry in raw.items():
        try:
            table[str(model)] = (float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"{p}: key {model!r}: needs numeric 'input' and 'output' (USD per 1M tokens), "
                              f"got {entry!r}") from None
    return table


def price_of(llm) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None when unknown (cost then reported as unknown).
    ``llm.price_input/price_output`` win, then ``llm.prices_file``, then the built-in table."""
    if llm.price_input is not None or llm.price_output is not None:
        return float(llm.price_input or 0.0), float(llm.price_output or 0.0)
    table = dict(PRICES)
    if llm.prices_file:
        table.update(read_price_table(llm.prices_file))
    return table.get(llm.model)


def cost_usd(prompt_tokens: int, completion_tokens: int, price: tuple[float, float] | None) -> float | None:
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def estimate_tokens(text: str) -> int:
    """About what GPT-4's tokenizer gives: one token per CJK character, one per 4 other characters."""
    cjk = sum(1 for ch in text if ord(ch) > 0x2E7F)
    other = sum(1 for ch in text if ord(ch) <= 0x2E7F and not ch.isspace())
    return cjk + math.ceil(other / 4)


def estimate_messages(messages: list[dict]) -> int:
    return sum(estimate_tokens(m["content"]) + 4 for m in messages) + 3


def format_usd(x: float | None) -> str:
    return "unknown (set llm.price_input/price_output or llm.prices_file)" if x is None else f"${x:,.4f}"
