"""Dense embedders: sentence-transformers (BGE by path or id) and OpenAI-compatible endpoints.

An embedder has an ``id`` (what produced a stored index: a different id is a different index)
and returns L2-normalised float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

# BAAI's BGE v1.5 (zh) models expect this instruction before short queries, not before passages
BGE_ZH_QUERY_INSTRUCTION = "为这个句子生成表示以用于检索相关文章："


def default_query_instruction(model: str) -> str:
    name = model.lower()
    return BGE_ZH_QUERY_INSTRUCTION if "bge" in name and "zh" in name and "m3" not in name else ""


def _normalise(vectors):
    import numpy as np

    from rolecraft.errors import RolecraftError

    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or not np.isfinite(v).all():
        raise RolecraftError("the embedder returned NaN/inf or a malformed array; check the embedding model")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if (norms == 0).any():
        raise RolecraftError("the embedder returned an all-zero vector (zero norm): cosine similarity is undefined")
    return v / norms


def _fingerprint(model: str) -> str:
    """A local model directory by its absolute path and its files' sizes and times (a retrained model
    at the same path is a different embedder); a hub id by itself."""
    import hashlib
    from pathlib import Path

    p = Path(model).expanduser()
    if not p.exists():
        return model
    files = sorted(f for f in p.rglob("*") if f.is_file())
    stamp = "|".join(f"{f.relative_to(p)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return f"{p.resolve()}@{hashlib.sha1(stamp.encode()).hexdigest()[:10]}"


class SentenceTransformerEmbedder:
    def __init__(self, model: str, device: str | None = None, query_instruction: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.model_name = model
        self.model = SentenceTransformer(model, device=device)
        self.query_instruction = default_query_instruction(model) if query_instruction is None else query_instruction
        self.batch_size = batch_size
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of() or len(self.model.encode(["x"])[0]))
        self.id = f"st:{_fingerprint(model)}"

    def embed(self, texts: list[str], query: bool = False):
        prefix = self.query_instruction if query else ""
        return _normalise(self.model.encode([prefix + t for t in texts], batch_size=self.batch_size,
                                            convert_to_numpy=True, show_progress_bar=False))


class OpenAIEmbedder:
    def __init__(self, endpoint_cfg, model: str, cache_path=None, batch_size: int = 64):
        from rolecraft.api.client import Endpoint

        self.endpoint = Endpoint(endpoint_cfg, "retrieval.endpoint", cache_path=cache_path)
        self.model_name, self.batch_size = model, batch_size
        self.dim = len(self.endpoint.embed(model, ["维度"])[0])
        self.id = f"openai:{self.endpoint.base_url}:{model}"

    def embed(self, texts: list[str], query: bool = False):
        return _normalise(self.endpoint.embed(self.model_name, texts, batch_size=self.batch_size))
