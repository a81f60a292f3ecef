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
    """Hydra's override grammar rejects unquoted non-ASCII values (``character=罗火旺``); quote them,
    inside ``[...]`` lists too, so Chinese names work as typed. Quoted values are left alone."""
    import re

    def q(v: str) -> str:
        if not v or v[0] in "'\"" or v.isascii():
            return v
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"

    out = []
    for arg in argv:
        m = re.match(r"^([+~]{0,2}[\w.@/-]+)=(.*)$", arg, re.S)
        if not m or arg.startswith("-") or m.group(2).isascii():
            out.append(arg)
            continue
        key, value = m.groups()
        if value.startswith("[") and value.endswith("]"):
            value = "[" + ",".join(q(v.strip()) for v in value[1:-1].split(",")) + "]"
        else:
            value = q(value)
        out.append(f"{key}={value}")
    return out
