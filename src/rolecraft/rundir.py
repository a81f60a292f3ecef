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
# metric keys renamed for honesty, old -> new (train/samples was the training-set size, not samples seen)
RENAMED_METRICS = {"train/samples": "train/dataset_samples"}
# the fields every samples.jsonl row has, in this order; scores and extras follow
SAMPLE_FIELDS = ("key", "character", "kind", "question", "references", "prediction")

SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|authorization)$", re.I)
# credentials inside a URL: the user:password@ part, and query parameters named like a key
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s@'\"]*@")
_URL_SECRET_PARAM = re.compile(
    r"([?&;](?:[a-z0-9_.-]*[_-])?(?:api[_-]?key|apikey|key|token|access[_-]?token|secret|password|passwd|pwd|auth|"
    r"authorization|sig|signature|credential|credentials|x-api-key)=)[^&#\s'\"]+", re.I)
# the value of a *_env key names an environment variable; anything else there may be a pasted key
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_PREFIX = re.compile(r"^(sk|pk|rk|hf|gsk|xai|ghp|gho|github_pat|glpat|AKIA|AIza|ya29|eyJ)[-_A-Za-z0-9.]{8,}")


# ---- writing -------------------------------------------------------------------------------


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message that contains URLs) without credentials: ``user:password@`` and
    query parameters named like a key (``?api_key=``, ``&token=`` ...) become ``***``."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(r"\1***@", text)
    return _URL_SECRET_PARAM.sub(r"\1***", text)


def looks_like_key(value) -> bool:
    """True when the value of a ``*_env`` key is not the name of an environment variable but looks like
    what such a variable holds (a pasted key)."""
    if value is None or value == "":
        return False
    v = str(value).strip().strip("'\"")
    if not v or v == "null":
        return False
    if not ENV_NAME.match(v) or _KEY_PREFIX.match(v):
        return True
    # a long run of mixed letters and digits without word separators: a key, not a variable's name
    classes = sum(bool(re.search(p, v)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return len(v) >= 24 and "_" not in v.strip("_") and classes >= 2 and sum(c.isdigit() for c in v) >= 3


def redact_override(override: str) -> str:
    """A command-line override (``key=value``) as it may be recorded."""
    key, sep, value = override.partition("=")
    if not sep:
        return override
    last = key.lstrip("+~").split(".")[-1]
    if (SECRET_KEY.search(last) and value not in ("", "null")) or (last.endswith("_env") and looks_like_key(value)):
        return f"{key}=***"
    return f"{key}={redact_url(value)}"


def redact(obj):
    """Replace the values of secret-looking keys (api_key, hf_token, password ...) and of ``*_env`` keys
    that hold a key instead of a variable's name; strip credentials from URLs in every string."""
    if isinstance(obj, dict):
        return {k: ("***" if v not in (None, "") and (SECRET_KEY.search(str(k))
                                                      or (str(k).endswith("_env") and looks_like_key(v)))
                    else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_url(obj)
    return obj


def redact_hydra_dir(run_dir, subdir: str = ".hydra") -> None:
    """Rewrite Hydra's own records (``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``), which
    Hydra writes before the task starts, with the same redaction as config.yaml."""
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        redact_yaml_file(Path(run_dir) / subdir / name)


def redact_yaml_file(path: Path) -> None:
    """Rewrite a YAML record redacted; a file without a secret (or absent, or unreadable) is left as it is."""
    import yaml

    from rolecraft.fileio import write_text

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return
    clean = _redact_records(data)
    if clean != data:
        write_text(path, yaml.safe_dump(clean, allow_unicode=True, sort_keys=False, default_flow_style=False))


def _redact_records(obj):
    """redact(), plus overrides as recorded in lists of ``key=value`` strings and Hydra's
    ``override_dirname`` (a comma-joined string of them)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in redact(obj).items():
            if k == "override_dirname" and isinstance(v, str):
                out[k] = ",".join(redact_override(o) for o in v.split(","))
            else:
                out[k] = _redact_records(v)
        return out
    if isinstance(obj, list):
        return [redact_override(v) if isinstance(v, str) and "=" in v else _redact_records(v) for v in obj]
    return obj


def write_config(cfg, out: Path) -> None:
    from omegaconf import OmegaConf

    from rolecraft.fileio import write_text

    resolved = redact(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
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

    write_json(Path(out) / METRICS, {k: redact_url(v) if isinstance(v, str) else v for k, v in metrics.items()})


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
    if not isinstance(data, dict):
        return None
    for old, new in RENAMED_METRICS.items():  # runs written before a key was renamed read as new ones
        if old in data and new not in data:
            data[new] = data.pop(old)
    return data


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
