"""Compiles ``tokenlcs.c`` into the shared library that ``tokenlcs.py`` loads.

Run at install time by ``hatch_build.py`` (pip install, editable or not), or by hand after editing
the C file: ``python -m rolecraft.evaluation.tokenlcs_build``. No Python headers are needed (the
library is loaded with ctypes). The library's name carries a hash of the source, so a stale build
is never loaded. Standard library only: the build hook imports this file before rolecraft exists.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("tokenlcs.c")
_SUFFIX = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")


def library_path(source: Path = SOURCE) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    return source.with_name(f"_tokenlcs-{digest}{_SUFFIX}")


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build(source: Path = SOURCE) -> Path:
    """Compiles (or finds) the library; raises RuntimeError with the compiler's words on failure."""
    out = library_path(source)
    if out.is_file():
        return out
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc, clang or $CC) found")
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    cmd = [*shlex.split(cc), "-O3", "-std=c99", "-shared", "-fPIC", "-o", str(tmp), str(source)]  # CC="ccache gcc"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise RuntimeError(f"{' '.join(cmd)} could not run: {exc}") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    os.replace(tmp, out)
    for old in source.parent.glob(f"_tokenlcs-*{_SUFFIX}"):  # builds of earlier sources
        if old != out:
            old.unlink(missing_ok=True)
    return out


if __name__ == "__main__":
    print(build())
