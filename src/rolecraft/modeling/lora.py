"""peft LoRA on the configured target modules (a list, or peft's all-linear), with DoRA, rsLoRA and
fully trained modules as options; on a quantized base, after peft's k-bit preparation."""

from __future__ import annotations

from rolecraft.errors import ConfigError

ALL_LINEAR = "all-linear"


def lora_targets(lora_cfg, model_cfg) -> list[str] | str:
    """``lora.target_modules`` (a list of module names, or ``all-linear``), else the preset's targets."""
    targets = lora_cfg.target_modules
    if targets is None:
        return list(model_cfg.lora_targets)
    if isinstance(targets, str):
        return targets.strip()
    targets = [str(t) for t in targets]
    return ALL_LINEAR if targets == [ALL_LINEAR] else targets


def apply_lora(model, lora_cfg, model_cfg, base_ref: str):
    """Wrap ``model`` with a fresh LoRA adapter. ``base_ref`` is recorded in adapter_config.json as
    base_model_name_or_path (a hub id or the portable "embedded:tiny", never a machine path)."""
    from peft import LoraConfig, get_peft_model

    from rolecraft.modeling.quant import is_quantized, prepare_quantized
    from rolecraft.modeling.twins import _get

    targets = lora_targets(lora_cfg, model_cfg)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    wanted = [] if targets == ALL_LINEAR else list(targets)
    missing = [t for t in wanted + list(_get(lora_cfg, "modules_to_save") or []) if t not in present]
    if missing:
        key = "lora.target_modules" if set(missing) & set(wanted) else "lora.modules_to_save"
        raise ConfigError(f"{key}: {missing} not found in {model_cfg.name_or_path}; "
                          f"linear layers there include {sorted(n for n in present if 'proj' in n or 'qkv' in n)[:12]} "
                          f"(or use lora.target_modules={ALL_LINEAR})")
    config = LoraConfig(
        r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout, target_modules=targets,
        bias=lora_cfg.bias, task_type="CAUSAL_LM", base_model_name_or_path=base_ref,
        use_dora=bool(_get(lora_cfg, "use_dora", False)), use_rslora=bool(_get(lora_cfg, "use_rslora", False)),
        modules_to_save=list(_get(lora_cfg, "modules_to_save") or []) or None,
    )
    if is_quantized(model):  # QLoRA: gradient checkpointing is always on
        model = prepare_quantized(model)
    elif model_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    from rolecraft.console import harmless_warnings_silenced

    with harmless_warnings_silenced():  # peft reads a deprecated transformers attribute
        peft_model = get_peft_model(model, config)
    peft_model.peft_config["default"].base_model_name_or_path = base_ref
    return peft_model
