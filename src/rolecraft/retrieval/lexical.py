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
    def __init__(self, docs: list[str]):
        self.tfs = [Counter(terms(d)) for d in docs]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        q = Counter(terms(query))
        out = []
        for tf, length in zip(self.tfs, self.lengths):
            s = 0.0
            norm = K1 * (1 - B + B * length / self.avg) if self.avg else K1
            for t, qn in q.items():
                f = tf.get(t)
                if f:
                    s += self.idf[t] * f * (K1 + 1) / (f + norm)
            out.append(s)
        return out
