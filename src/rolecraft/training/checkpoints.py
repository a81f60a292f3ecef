"""Checkpoints: checked before the model loads, written so a failed save leaves nothing half-written.

- ``check_checkpoint(path)`` reads the file Lightning would resume from before anything heavy
  loads: missing, not a torch zip archive (random bytes, a file cut short), unreadable, or lacking
  the keys Lightning restores from are one-line errors naming the path.
- ``AtomicCheckpointIO`` (in ``checkpoint_io``, which imports Lightning) writes each checkpoint to a temporary file in the target directory and
  renames it over the target (``os.replace``: atomic on one filesystem). Lightning's own save
  stages the file in the system temp dir and moves it, which across filesystems is a copy, and a
  full disk then left a truncated ``step-…ckpt`` beside the good ones. A failed write removes its
  temporary file, leaves every earlier checkpoint as it was and stops the run with one line.
"""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

from rolecraft.errors import ConfigError, RolecraftError

# what Lightning's checkpoint connector restores from when it resumes a fit
REQUIRED_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")
LIGHTNING_NAMES = ("last", "best", "hpc", "registry")  # ckpt_path values Lightning resolves itself


class CheckpointWriteError(RolecraftError):
    """A checkpoint could not be written (disk full, permissions ...); earlier ones are intact."""


def check_checkpoint(ckpt_path: str | None) -> None:
    if not ckpt_path:
        return
    if ckpt_path in LIGHTNING_NAMES and not os.path.exists(ckpt_path):
        return
    path = Path(ckpt_path).expanduser()

    def bad(what: str) -> ConfigError:
        return ConfigError(f"ckpt_path={ckpt_path!r}: {what}; give a checkpoint a run wrote "
                           "(RUN_DIR/checkpoints/last.ckpt)")

    if not path.exists():
        return bad("no such file")
    if not path.is_file():
        return bad("not a file")
    if not os.access(path, os.R_OK):
        return bad("not readable (permissions)")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return bad(f"not a torch checkpoint ({path.stat().st_size} bytes that are not a zip archive: "
                   "random bytes, or a file cut short)")
    except OSError as e:
        return bad(f"could not be read ({e.strerror or e})")
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return bad("a zip archive without torch's data.pkl: not a torch checkpoint")
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:  # a damaged member, a pickle that does not load
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return bad(f"damaged torch checkpoint ({type(e).__name__}: {first[:200]})")
    if not isinstance(ckpt, dict):
        return bad(f"holds a {type(ckpt).__name__}, not a Lightning checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        return bad(f"not a Lightning training checkpoint (missing {', '.join(missing)})")
    return None


def validate_checkpoint(ckpt_path: str | None) -> None:
    """Raise the one-line ConfigError of ``check_checkpoint`` when the checkpoint cannot resume a run."""
    err = check_checkpoint(ckpt_path)
    if err is not None:
        raise err


def write_error(path: str | os.PathLike, e: OSError) -> CheckpointWriteError:
    where = os.path.dirname(os.path.abspath(path))
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                errno.EFBIG: "the file size limit was reached"}[e.errno]
        return CheckpointWriteError(f"checkpoint {path} could not be written: {what} ({where}); earlier checkpoints "
                                    "there are intact; free space or point hydra.run.dir at a disk with room, then "
                                    "resume with ckpt_path=<last good checkpoint>")
    return CheckpointWriteError(f"checkpoint {path} could not be written ({e.strerror or e}); earlier checkpoints in "
                                f"{where} are intact")
