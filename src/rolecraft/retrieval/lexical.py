"""BM25 over character unigrams and bigrams: a retrieval backend with no model and no dependency.

Chinese has no spaces and jieba's segmentation of short lines is unstable, so both character
unigrams (recall) and bigrams (precision: 火锅, 毛肚) are terms; whitespace and punctuation are not.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter

K1, B = 1.2, 0.75


def terms(text: str) -> list[str]:
    chars = [ch.lower() for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P")]
    return chars + [a + b for a, b in zip(chars, chars[1:])]


class BM25:
    """Okapi BM25 with an inverted index: a query touches only the postings of its own terms."""

    def __init__(self, docs: list[str]):
        tfs = [Counter(terms(d)) for d in docs]
        self.n = len(docs)
        lengths = [sum(tf.values()) for tf in tfs]
        avg = (sum(lengths) / len(lengths)) if lengths else 0.0
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for i, tf in enumerate(tfs):
            norm = K1 * (1 - B + B * lengths[i] / avg) if avg else K1
            for t, f in tf.items():
                self.postings.setdefault(t, []).append((i, f * (K1 + 1) / (f + norm)))
        self.idf = {t: math.log(1 + (self.n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def scores(self, query: str) -> list[float]:
        out = [0.0] * self.n
        for t, qn in Counter(terms(query)).items():
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, w in self.postings[t]:
                out[i] += idf * w
        return out
