"""Run records: secret-looking keys never reach config.yaml (or a logger's config)."""

from __future__ import annotations

from omegaconf import OmegaConf

from rolecraft.rundir import redact, write_config

# built at run time so no key-shaped literal sits in the repository
FAKE_KEY = "sk-" + "x" * 26


def test_redact_hides_secrets_and_keeps_look_alikes():
    cfg = {"llm": {"api_key": FAKE_KEY, "api_key_env": "OPENAI_API_KEY", "base_url": "http://x"},
           "hub": {"hf_token": "hf_secret", "password": "pw", "token": "t"},
           "eval": {"generation": {"max_new_tokens": 64}}, "model": {"stop_tokens": ["<|im_end|>"]},
           "empty": {"api_key": None}}
    out = redact(cfg)
    assert out["llm"]["api_key"] == "***" and out["hub"] == {"hf_token": "***", "password": "***", "token": "***"}
    assert out["llm"]["api_key_env"] == "OPENAI_API_KEY"  # naming a variable is not a secret
    assert out["eval"]["generation"]["max_new_tokens"] == 64 and out["model"]["stop_tokens"] == ["<|im_end|>"]
    assert out["empty"]["api_key"] is None


def test_written_config_is_resolved_and_redacted(tmp_path):
    cfg = OmegaConf.create({"a": 1, "b": "${a}", "llm": {"api_key": FAKE_KEY}})
    write_config(cfg, tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    assert "b: 1" in text and "sk-" not in text and "api_key: '***'" in text
