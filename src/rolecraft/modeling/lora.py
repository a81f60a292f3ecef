"""peft LoRA on the configured target modules."""

from __future__ import annotations

from rolecraft.errors import ConfigError


def lora_targets(lora_cfg, model_cfg) -> list[str]:
    return list(lora_cfg.target_modules) if lora_cfg.target_modules else list(model_cfg.lora_targets)


def apply_lora(model, lora_cfg, model_cfg, base_ref: str):
    """Wrap ``model`` with a fresh LoRA adapter. ``base_ref`` is recorded in adapter_config.json as
    base_model_name_or_path (a hub id or the portable "embedded:tiny", never a machine path)."""
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(lora_cfg, model_cfg)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ConfigError(f"lora.target_modules: {missing} not found in {model_cfg.name_or_path}; "
                          f"linear layers there include {sorted(n for n in present if 'proj' in n or 'qkv' in n)[:12]}")
    config = LoraConfig(
        r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout, target_modules=targets,
        bias=lora_cfg.bias, task_type="CAUSAL_LM", base_model_name_or_path=base_ref,
    )
    if model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    from rolecraft.console import harmless_warnings_silenced

    with harmless_warnings_silenced():  # peft reads a deprecated transformers attribute
        peft_model = get_peft_model(model, config)
    peft_model.peft_config["default"].base_model_name_or_path = base_ref
    return peft_model
