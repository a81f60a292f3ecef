"""Lightning CheckpointIO that never leaves a half-written checkpoint (see ``training.checkpoints``)."""

from __future__ import annotations

import errno
import os
import tempfile

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from rolecraft.training.checkpoints import write_error


def _nearly_full(folder: str) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary file beside the target, then os.replace it over the target."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        import torch

        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            raise write_error(path, e) from None
        except RuntimeError as e:  # torch's zip writer reports a failed write as a RuntimeError
            cause = e.__cause__ if isinstance(e.__cause__, OSError) else None
            if cause is None and "write" in str(e).lower():
                full = "space" in str(e).lower() or _nearly_full(folder)
                cause = OSError(errno.ENOSPC if full else errno.EIO, str(e).strip().splitlines()[0])
            if cause is None:
                raise
            raise write_error(path, cause) from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
