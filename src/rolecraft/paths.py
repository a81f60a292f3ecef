"""Where the shipped Hydra configs live: inside the installed package, or conf/ of a checkout."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"RoleCraft configs not found in {here / 'conf'} or {here.parent.parent / 'conf'}")


def quote_non_ascii_overrides(argv: list[str]) -> list[str]:
    """Hydra's override grammar rejects unquoted non-ASCII values (``character=罗火旺``); quote them
    (in ``[a,b]`` lists and ``a,b`` sweeps element by element) so Chinese names work as typed.
    Anything already quoted, escaped, nested (``{...}``, ``[[...]]``) or interpolated is left as is."""
    import re

    def q(v: str) -> str:
        return v if v.isascii() or not v else f"'{v}'"

    out = []
    for arg in argv:
        m = re.match(r"^([+~]{0,2}[\w.@/-]+)=(.*)$", arg, re.S)
        value = m.group(2) if m else ""
        if (not m or arg.startswith("-") or value.isascii() or any(c in value for c in "'\"\\")
                or value.startswith(("{", "[[")) or "${" in value):
            out.append(arg)
            continue
        if value.startswith("[") and value.endswith("]"):
            value = "[" + ",".join(q(v.strip()) for v in value[1:-1].split(",")) + "]"
        else:
            value = ",".join(q(v.strip()) for v in value.split(","))
        out.append(f"{m.group(1)}={value}")
    return out
