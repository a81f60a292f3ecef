"""Retrieval of character context (the paper's section 3.2: BGE embeddings of character knowledge).

Per character, the passages are its script lines (with their emotion labels) and its profile
facts; a question retrieves the k most relevant within a character budget, and those become the
exemplars of the system prompt at training and at inference alike. Backends: ``lexical`` (BM25
over character uni- and bigrams; no dependencies, the offline default), ``bge`` (any
sentence-transformers model by path or id) and ``openai`` (an OpenAI-compatible embeddings endpoint).
"""
