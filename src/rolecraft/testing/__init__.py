"""Test helpers that stand in for outside services (e.g. a local fake OpenAI-compatible server)."""
