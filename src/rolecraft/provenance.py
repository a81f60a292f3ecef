"""What a run was made from, recorded beside its results: ``provenance.json`` in every train.py and
evaluate.py run directory.

- ``model``: the base model (preset name and path or hub id; for evaluate.py the source of the
  answers: a preset, a trained run's base, an endpoint's model, or a predictions file);
- ``data``: the dataset or benchmark by name and root, with a sha256 per file actually read and one
  over all of them (``data.sha256``), so two runs "on the same data" can be checked byte for byte;
- ``prompt``: the prompt spec (the same record as ``prompt.yaml``, with its template hash);
- ``overrides``: the command-line overrides as typed (secrets redacted like config.yaml);
- ``code``: the package version and, where the package runs from a git checkout, the commit and
  whether tracked files differed from it (``dirty``).

Reports read it to say, per row, what the numbers are of, and to decide whether the paper's values
belong beside them (``rolecraft.report``). Runs made before this file existed are described from
their config.yaml by :func:`describe` instead. Only the standard library and RoleCraft's lowest
layers are imported here (no torch): evaluate.py over a predictions file and the report need none.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

FILE = "provenance.json"
FORMAT = "rolecraft-provenance/1"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def data_record(name: str | None, root, files: list[Path]) -> dict:
    """A dataset by name and root, with the sha256 of each file read and one over all of them (over
    the sorted (relative name, file hash) pairs, so it does not depend on where the data lives)."""
    from rolecraft.rundir import redact_url

    base = Path(str(root)).expanduser() if root is not None else None
    hashes: dict[str, str] = {}
    for f in files:
        f = Path(f)
        if not f.is_file():
            continue
        try:
            rel = str(f.relative_to(base)) if base is not None and base.is_dir() else f.name
        except ValueError:
            rel = f.name
        hashes[rel] = file_sha256(f)
    total = hashlib.sha256("\n".join(f"{k}\t{v}" for k, v in sorted(hashes.items())).encode("utf-8")).hexdigest()
    return {"name": name, "root": None if root is None else redact_url(str(root)), "files": hashes,
            "sha256": total if hashes else None}


def dataset_record(root_arg: str, ds) -> dict:
    """A canonical RoleInstruct dataset as loaded (``schema.load``): its meta.json name and its files."""
    from rolecraft.data.schema import FILES

    root = Path(ds.root) if ds.root is not None else None
    files = [root / n for n in FILES] if root is not None else []
    rec = data_record(str((ds.meta or {}).get("name") or root_arg), root, files)
    rec["root"] = str(root_arg)  # as typed: embedded:demo, not the package's install path
    return rec


def model_record(model_cfg) -> dict:
    from rolecraft.rundir import redact_url

    return {"preset": str(model_cfg.name), "name_or_path": redact_url(str(model_cfg.name_or_path))}


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def code_version() -> dict:
    """The package version; the git commit and dirty flag when the package runs from a checkout
    (the checkout must be the one holding this package, not some repository around an install)."""
    import rolecraft

    pkg = Path(rolecraft.__file__).resolve().parent
    out: dict = {"package": "rolecraft", "version": rolecraft.__version__, "git_commit": None, "git_dirty": None}
    top = _git(["rev-parse", "--show-toplevel"], pkg)
    if top and (Path(top) / "src" / "rolecraft").resolve() == pkg:
        out["git_commit"] = _git(["rev-parse", "HEAD"], pkg)
        status = _git(["status", "--porcelain", "--untracked-files=no"], pkg)
        out["git_dirty"] = None if status is None else bool(status)
    return out


def typed_overrides() -> list[str]:
    """The overrides of this Hydra run as typed, secrets redacted; [] outside a Hydra run."""
    from rolecraft.rundir import redact_override

    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 - composed by hand (tests), no Hydra run
        return []
    return [redact_override(str(o)) for o in task]


def build(program: str, model: dict | None, data: dict | None, spec=None, **extra) -> dict:
    from rolecraft.data.prompts import spec_record

    rec = {"format": FORMAT, "program": program, "model": model, "data": data,
           "prompt": spec_record(spec) if spec is not None else None, "overrides": typed_overrides(),
           "code": code_version()}
    rec.update({k: v for k, v in extra.items() if v is not None})
    from rolecraft.rundir import redact

    return redact(rec)


def write(out, record: dict) -> Path:
    from rolecraft.fileio import write_json

    path = Path(out) / FILE
    write_json(path, record)
    return path


def read(run_dir) -> dict | None:
    try:
        data = json.loads((Path(run_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---- describing a run (for reports) --------------------------------------------------------------


def describe(provenance: dict | None, config: dict | None, overrides: dict | None = None) -> dict:
    """{model, data, data_sha256, code, overrides} of a run, from its provenance.json, else (older
    runs, W&B runs) from its resolved config. A value that cannot be known is None."""
    config = config or {}
    if provenance:
        m = provenance.get("model") or {}
        d = provenance.get("data") or {}
        code = provenance.get("code") or {}
        model = m.get("preset") or m.get("name_or_path")
        if not model and m.get("source"):  # answers from a file nobody recorded the model of
            model = f"{m['source']}:{Path(str(m['path'])).name}" if m.get("path") else str(m["source"])
        return {"model": model,
                "model_path": m.get("name_or_path"),
                "data": d.get("name"), "data_root": d.get("root"), "data_sha256": d.get("sha256"),
                "code": _code_text(code), "overrides": list(provenance.get("overrides") or []), "recorded": True}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    bench = config.get("benchmark") if isinstance(config.get("benchmark"), dict) else {}
    answers = config.get("answers") if isinstance(config.get("answers"), dict) else {}
    model_name = model.get("name")
    if answers.get("source") in ("openai",):
        model_name = answers.get("model")
    elif answers.get("source") in ("predictions", "run"):
        model_name = None  # whatever made those answers: not in this config
    root = data.get("root") or bench.get("root")
    return {"model": model_name, "model_path": model.get("name_or_path"),
            "data": _data_name(root), "data_root": root, "data_sha256": None, "code": None,
            "overrides": [f"{k}={v}" for k, v in (overrides or {}).items()], "recorded": False}


def _data_name(root) -> str | None:
    if root in (None, ""):
        return None
    root = str(root)
    if root == "embedded:demo":
        return "rolecraft-demo"
    meta = Path(root).expanduser() / "meta.json"
    try:
        name = json.loads(meta.read_text(encoding="utf-8")).get("name")
        return str(name) if name else root
    except (OSError, ValueError, AttributeError):
        return root


def _code_text(code: dict) -> str | None:
    if not code:
        return None
    s = str(code.get("version") or "?")
    if code.get("git_commit"):
        s += f"@{str(code['git_commit'])[:10]}" + ("+dirty" if code.get("git_dirty") else "")
    return s
