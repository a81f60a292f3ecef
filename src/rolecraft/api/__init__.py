"""OpenAI-compatible endpoints: bounded concurrency, retries with backoff, an on-disk cache."""
