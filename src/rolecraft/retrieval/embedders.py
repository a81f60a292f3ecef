"""Dense embedders: one local class (sentence-transformers, BGE by path or id; used by retrieval
and by RPCS) and OpenAI-compatible endpoints.

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


class LocalEmbedder:
    """The one local embedder: a sentence-transformers model (BGE by path or hub id) for retrieval
    indexes and for RPCS.

    ``embed(texts, query=False)`` gives L2-normalised float32 rows (queries get the model's
    instruction prefix, as BGE expects); calling the embedder gives plain float lists (RPCS's
    ``Embed``). With ``cache_path`` vectors are kept in the evaluation cache by (model, text), so
    rescoring embeds only new texts. The model loads on first use; ``id`` names what produced a
    stored index (a retrained model at the same path is a different id).
    """

    def __init__(self, model: str, device: str | None = None, query_instruction: str | None = None,
                 batch_size: int = 64, cache_path=None, what: str = "retrieval"):
        self.model_name, self.device, self.batch_size, self.what = model, device, batch_size, what
        self.query_instruction = default_query_instruction(model) if query_instruction is None else query_instruction
        self.id = f"st:{_fingerprint(model)}"
        self._cache_path = cache_path
        self._cache = None
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from rolecraft.errors import ConfigError

            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(f"{self.what}: a local embedder needs sentence-transformers: "
                                  "pip install 'rolecraft[embed]'") from None
            try:
                self._model = SentenceTransformer(self.model_name, device=self.device)
            except OSError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(f"{self.what}.model={self.model_name!r} could not be loaded ({first}); give a "
                                  "local sentence-transformers directory on offline machines") from None
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        dim_of = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(dim_of() or len(m.encode(["x"])[0]))

    def _vectors(self, texts: list[str]) -> list[list[float]]:
        """Raw model vectors, from the cache where present; new ones checked (NaN, zero) and stored."""
        from rolecraft.api.client import check_vector
        from rolecraft.api.store import ResponseCache, request_key

        if self._cache is None and self._cache_path:
            self._cache = ResponseCache(self._cache_path)
        key = lambda t: request_key("local", self.model_name, t)  # noqa: E731 - the key RPCS always used
        out: list = [self._cache.get("embeddings", key(t)) if self._cache else None for t in texts]
        missing = sorted({t for t, v in zip(texts, out) if v is None})
        if missing:
            vecs = self.model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=len(missing) > 4 * self.batch_size)
            found = {}
            for t, v in zip(missing, vecs):
                v = [float(x) for x in v]
                check_vector(v, f"{self.what}: embedding of {t[:40]!r} from {self.model_name}")
                found[t] = v
                if self._cache:
                    self._cache.put("embeddings", key(t), v)
            out = [v if v is not None else found[t] for t, v in zip(texts, out)]
        return out

    def embed(self, texts: list[str], query: bool = False):
        prefix = self.query_instruction if query else ""
        return _normalise(self._vectors([prefix + t for t in texts]))

    def __call__(self, texts: list[str]) -> list[list[float]]:
        return self._vectors(texts)


SentenceTransformerEmbedder = LocalEmbedder  # the earlier name, kept for callers outside this package


class OpenAIEmbedder:
    def __init__(self, endpoint_cfg, model: str, cache_path=None, batch_size: int = 64):
        from rolecraft.api.client import Endpoint

        self.endpoint = Endpoint(endpoint_cfg, "retrieval.endpoint", cache_path=cache_path)
        self.model_name, self.batch_size = model, batch_size
        self.dim = len(self.endpoint.embed(model, ["维度"])[0])
        self.id = f"openai:{self.endpoint.base_url}:{model}"

    def embed(self, texts: list[str], query: bool = False):
        return _normalise(self.endpoint.embed(self.model_name, texts, batch_size=self.batch_size))
