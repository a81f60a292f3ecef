"""Terminal output, one convention for every command.

- **stdout** carries results only: train.py and evaluate.py print one JSON line of final metrics,
  ``rolecraft`` subcommands their tables and summaries. Nothing else goes there, so
  ``python train.py ... | jq`` works.
- **stderr** carries everything for the person watching: log records (once: Hydra's console
  handler points at stderr in ``conf/hydra/default.yaml``, and Lightning's own handler is
  removed by :func:`adopt_lightning_logging`), warnings, and progress bars (:func:`progress`,
  Lightning's bar through ``training.progress.StderrProgressBar``).
- **quiet** (``quiet=true`` on the Hydra entry points, ``-q`` on ``rolecraft``): warnings and
  errors only, no progress bars; stdout is unchanged. **verbose** (``-v`` on ``rolecraft``;
  ``hydra.verbose=rolecraft`` on the Hydra entry points): debug records and full lists (every
  import defect). tqdm's own ``TQDM_DISABLE=1`` also turns the bars off.
- Known-harmless third-party noise is filtered here, at the source, in one list each
  (:data:`HARMLESS_WARNINGS`, :data:`ADVERTISEMENTS`), every entry with the reason it is harmless.

Pure standard library (tqdm is imported when a bar is made): safe for the torch-free paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

_state = {"quiet": False, "verbose": False}
QUIET_ENV = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")
_set_by_us: set[str] = set()

# (message regex, category, why it is harmless for us). Matched from the start of the message.
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (r".*`is_gradient_checkpointing` is deprecated", FutureWarning,
     "peft reads the old transformers attribute on every PeftModel; nothing of ours uses it"),
    (r".*base_model_name_or_path.*was renamed", Warning,
     "peft notes the portable 'embedded:tiny' base name we record on purpose (rolecraft export)"),
    (r".*Could not find a config file in (embedded|twin):", Warning,
     "peft looks for the base's config under the portable name; the base is already loaded"),
    (r".*Using ModelCheckpoint with manual optimization", Warning,
     "our step is one manual optimisation over the whole accumulation window; checkpoints are per step"),
    (r".*LeafSpec.*deprecated", Warning, "torch.utils._pytree deprecation raised inside Lightning"),
    (r".*recommended to use `self.log\('val/loss'.*sync_dist=True", Warning,
     "val/loss is all-reduced by the module before it is logged (on_validation_epoch_end)"),
)

# substrings of INFO records that only advertise a product; dropped from these loggers
ADVERTISEMENTS: tuple[tuple[str, str], ...] = (
    ("lightning.pytorch.utilities.rank_zero", "litlogger"),  # "💡 Tip: ... try installing litlogger"
    ("lightning.fabric.utilities.rank_zero", "litlogger"),
)


class _DropAdvertisements(logging.Filter):
    def __init__(self, needle: str):
        super().__init__()
        self.needle = needle

    def filter(self, record: logging.LogRecord) -> bool:
        return self.needle not in str(record.msg)


def silence_known_noise() -> None:
    """Install the filters above (idempotent). Called first thing by every entry point."""
    for pattern, category, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for name, needle in ADVERTISEMENTS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) and f.needle == needle for f in logger.filters):
            logger.addFilter(_DropAdvertisements(needle))


@contextlib.contextmanager
def harmless_warnings_silenced():
    """The :data:`HARMLESS_WARNINGS` filters around one library call (e.g. building a PeftModel),
    so Python callers of RoleCraft's functions do not see them either; restored afterwards."""
    with warnings.catch_warnings():
        for pattern, category, _why in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern, category=category)
        yield


def adopt_lightning_logging() -> None:
    """Lightning adds its own stderr handler to the ``lightning`` logger at import and also lets
    records propagate to the root, so with Hydra's handler every line printed twice. Where the
    root has a handler (a Hydra entry point), drop Lightning's: each record then prints once,
    formatted like ours, and also lands in the run's log file. Call after importing lightning."""
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if type(h) is logging.StreamHandler:
                logger.removeHandler(h)
        logger.propagate = True


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """quiet: console handlers show warnings and errors only (a run's log file keeps INFO) and
    progress bars are off. verbose: RoleCraft's debug records are shown."""
    _state["quiet"], _state["verbose"] = bool(quiet), bool(verbose) and not quiet
    # other libraries' bars (transformers' "Loading weights", sentence-transformers, hub downloads)
    # read these when they are imported, which is after this call in every entry point
    for var in QUIET_ENV:
        if quiet and var not in os.environ:
            os.environ[var] = "1"
            _set_by_us.add(var)
        elif not quiet and var in _set_by_us:
            os.environ.pop(var, None)
            _set_by_us.discard(var)
    if quiet:
        _quiet_loaded_libraries()
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(logging.WARNING if quiet else logging.NOTSET)
    if _state["verbose"]:
        logging.getLogger("rolecraft").setLevel(logging.DEBUG)


def _quiet_loaded_libraries() -> None:
    """The variables above reach only libraries imported after set_verbosity; one already imported
    (by a notebook or program that calls RoleCraft, or a test's pre-warmed interpreter) read them
    at its import, so it is told through its own switch."""
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    tf_logging = sys.modules.get("transformers.utils.logging")
    if tf_logging is not None:
        tf_logging.disable_progress_bar()
    ds_logging = sys.modules.get("datasets.utils.logging")
    if ds_logging is not None:
        ds_logging.disable_progress_bar()


def is_quiet() -> bool:
    return _state["quiet"]


def is_verbose() -> bool:
    return _state["verbose"]


def is_secondary_rank() -> bool:
    """A distributed rank other than the first (Lightning's DDP children, torchrun, SLURM tasks
    of one run): it logs only warnings and errors, and shows no bars, so each line shows once."""
    return any(int(os.environ.get(v, "0") or 0) > 0 for v in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def setup(quiet: bool = False, verbose: bool = False) -> None:
    """The entry points' one call: filters, then verbosity (quiet on ranks other than the first)."""
    silence_known_noise()
    set_verbosity(quiet=quiet or is_secondary_rank(), verbose=verbose)


def progress(iterable=None, *, desc: str, total: int | None = None, unit: str = "it", **kwargs):
    """A tqdm bar on stderr for work that can take more than a few seconds; it appears after the
    first second only, and never when quiet (or under tqdm's own ``TQDM_DISABLE=1``). Wraps
    ``iterable`` like tqdm, or is updated by hand."""
    from tqdm import tqdm

    if _state["quiet"]:
        kwargs["disable"] = True
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("delay", 1.0)  # work that ends within a second shows no bar at all
    stream = kwargs["file"]
    if not (hasattr(stream, "isatty") and stream.isatty()) and "TQDM_MININTERVAL" not in os.environ:
        # a log file or CI capture keeps every redraw as a line: one every 10 s, not ten a second
        kwargs.setdefault("mininterval", 10.0)
    return tqdm(iterable, desc=desc, total=total, unit=unit, **kwargs)
