"""The run directory, one format for every producer and reader.

train.py and evaluate.py both write (through ``write_samples`` / ``write_config``):

- ``config.yaml``  the resolved config, secret-looking keys redacted;
- ``prompt.yaml``  the prompt spec the answers were made with (train.py: the one it trained with);
- ``samples.jsonl`` one row per benchmark item: key, character, kind, question, references,
  prediction and per-sample scores (``rouge_l``, ``rpcs`` …);
- ``metrics.json`` flat keys on a 0-1 scale, written last: its presence marks a finished run.

Readers (report, bootstrap, judge comparison, human export, ``answers=run``, chat, export) go
through ``read_samples`` / ``read_metrics`` / ``metric``, which also read the older layout
(``predictions.jsonl`` with ``id`` instead of ``key``), so no reader has a format branch.
This module is the lowest layer: it imports nothing of RoleCraft but ``errors`` and ``fileio``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from rolecraft.errors import DataError

SAMPLES = "samples.jsonl"
LEGACY_SAMPLES = "predictions.jsonl"  # train.py runs before the formats were unified
METRICS = "metrics.json"
CONFIG = "config.yaml"
PROMPT = "prompt.yaml"
# the fields every samples.jsonl row has, in this order; scores and extras follow
SAMPLE_FIELDS = ("key", "character", "kind", "question", "references", "prediction")

SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|authorization)$", re.I)


# ---- writing -------------------------------------------------------------------------------


def redact(obj):
    """Replace the values of secret-looking keys (api_key, hf_token, password ...)."""
    if isinstance(obj, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v not in (None, "")
                    else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def write_config(cfg, out: Path) -> None:
    from omegaconf import OmegaConf

    from rolecraft.fileio import write_text

    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    write_text(Path(out) / CONFIG, OmegaConf.to_yaml(OmegaConf.create(resolved)))


def sample_row(key: str, character: str | None, kind: str, question: str, references: list[str],
               prediction: str, **extra) -> dict:
    """One samples.jsonl row; ``extra`` carries scores (rouge_l, rpcs) and optional fields
    (prompt, category)."""
    row = {"key": key, "character": character, "kind": kind, "question": question,
           "references": list(references), "prediction": prediction}
    row.update({k: v for k, v in extra.items() if v is not None})
    return row


def write_samples(out: Path, rows: list[dict]) -> Path:
    from rolecraft.fileio import write_jsonl

    path = Path(out) / SAMPLES
    write_jsonl(path, rows)
    return path


def write_metrics(out: Path, metrics: dict) -> None:
    """Written last: a run directory with metrics.json is a finished run."""
    from rolecraft.fileio import write_json

    write_json(Path(out) / METRICS, metrics)


# ---- reading -------------------------------------------------------------------------------


def samples_path(run_dir: str | Path) -> Path | None:
    """The per-sample file of a run directory (either layout), or None."""
    d = Path(run_dir)
    for name in (SAMPLES, LEGACY_SAMPLES):
        if (d / name).is_file():
            return d / name
    return None


def normalise_row(row: dict) -> dict:
    """A row of either layout in the current one (``id`` -> ``key``)."""
    if "key" not in row and "id" in row:
        row = dict(row)
        row["key"] = row.pop("id")
    return row


def read_samples(run_dir: str | Path) -> list[dict]:
    """Rows of a run's samples file in the current layout; an error names the file when absent."""
    from rolecraft.fileio import read_jsonl

    path = samples_path(run_dir)
    if path is None:
        raise DataError(f"{run_dir}: no {SAMPLES} (nor {LEGACY_SAMPLES}): not a finished train.py or evaluate.py "
                        "run directory")
    return [normalise_row(obj) for _, obj in read_jsonl(path)]


def read_metrics(run_dir: str | Path) -> dict | None:
    """metrics.json as a dict; None when absent or unreadable (an unfinished run)."""
    p = Path(run_dir) / METRICS
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def metric(metrics: dict, name: str, split: str = "test"):
    """A metric by its bare name (``rouge_l/avg``): evaluate.py writes it bare, train.py under its
    evaluation split (``test/rouge_l/avg``)."""
    for key in (name, f"{split}/{name}"):
        if key in metrics:
            return metrics[key]
    return None


def is_finished(run_dir: str | Path) -> bool:
    return read_metrics(run_dir) is not None


def read_config(run_dir: str | Path) -> dict:
    from rolecraft.fileio import read_yaml

    p = Path(run_dir) / CONFIG
    try:
        data = read_yaml(p)
    except OSError:
        return {}
    return data if isinstance(data, dict) else {}
