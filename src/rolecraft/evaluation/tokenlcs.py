"""ctypes front of ``tokenlcs.c``: token LCS lengths of many text pairs in one call.

``pair_lcs`` returns None when the library is not built (no C compiler at install time, or the C
file changed since): callers then take the Python path, which gives the same numbers.
"""

from __future__ import annotations

import ctypes
import logging
from functools import lru_cache

from rolecraft.evaluation.tokenlcs_build import library_path

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    path = library_path()
    try:
        if not path.is_file():
            raise OSError("not built")
        lib = ctypes.CDLL(str(path))
    except OSError as exc:  # not built (no compiler, or the C file changed since), other platform, damaged
        log.warning("native Rouge-L library %s: %s; scoring takes the Python path (same scores, slower). "
                    "Build it: python -m rolecraft.evaluation.tokenlcs_build", path.name, exc)
        return None
    p = ctypes.c_void_p
    lib.rc_pair_lcs.argtypes = [p, p, ctypes.c_int64, p, p, ctypes.c_int64, p, p, p]
    lib.rc_pair_lcs.restype = ctypes.c_int
    lib.rc_token_counts.argtypes = [p, p, ctypes.c_int64, p, p]
    lib.rc_token_counts.restype = ctypes.c_int
    return lib


def _buffers(texts: list[str]):
    import numpy as np

    # one UTF-32 buffer for all texts; lone surrogates keep their one code unit
    cp = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), out=off[1:])
    return cp, off


def pair_lcs(texts: list[str], hyp, ref):
    """For pairs (texts[hyp[k]], texts[ref[k]]) of space-tokenised texts: int64 arrays (lcs, n_hyp,
    n_ref), the LCS length and lengths of rouge-chinese's word lists. None without the library."""
    import numpy as np

    lib = library()
    if lib is None:
        return None
    hyp = np.ascontiguousarray(hyp, dtype=np.int64)
    ref = np.ascontiguousarray(ref, dtype=np.int64)
    n = len(hyp)
    if len(ref) != n:
        raise ValueError(f"pair_lcs: {n} hypotheses, {len(ref)} references")
    if n and (min(hyp.min(), ref.min()) < 0 or max(hyp.max(), ref.max()) >= len(texts)):
        raise IndexError(f"pair_lcs: a text index is outside 0..{len(texts) - 1}")
    cp, off = _buffers(texts)
    lcs, nh, nr = (np.empty(n, dtype=np.int64) for _ in range(3))
    if n and lib.rc_pair_lcs(cp.ctypes.data, off.ctypes.data, len(texts), hyp.ctypes.data, ref.ctypes.data, n,
                             lcs.ctypes.data, nh.ctypes.data, nr.ctypes.data):
        raise MemoryError("tokenlcs: out of memory")
    return lcs, nh, nr


def token_counts(texts: list[str]):
    """(words per text, whether the text went through the sentence rules) as the library sees them."""
    import numpy as np

    lib = library()
    if lib is None:
        return None
    cp, off = _buffers(texts)
    counts, flags = np.empty(len(texts), dtype=np.int64), np.empty(len(texts), dtype=np.uint8)
    if texts and lib.rc_token_counts(cp.ctypes.data, off.ctypes.data, len(texts), counts.ctypes.data,
                                     flags.ctypes.data):
        raise MemoryError("tokenlcs: out of memory")
    return counts, flags.astype(bool)
