"""`rolecraft export RUN_DIR --merge OUT` (or `--adapter OUT`): a trained character for serving.

``--merge`` folds the LoRA adapter into the base weights and writes a plain transformers model
directory (weights, tokenizer with its chat template): ``AutoModelForCausalLM.from_pretrained(OUT)``
and ``vllm serve OUT`` load it with no peft and no RoleCraft. ``--adapter`` writes the adapter alone
with ``base_model_name_or_path`` pointing at a loadable base (for vLLM's ``--lora-modules``).
Both are written to a temporary directory and moved into place when complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rolecraft.errors import ConfigError


def export(run_dir: str, out: str, merge: bool, cache_dir: str, base: str | None = None, force: bool = False) -> dict:
    from rolecraft.fileio import atomic_dir, check_output_dir, read_json, write_json
    from rolecraft.inference.sources import load_run
    from rolecraft.modeling.base import resolve_base
    from rolecraft.modeling.twins import wants_twin

    run = Path(run_dir).expanduser()
    flag = "--merge" if merge else "--adapter"
    check_output_dir(out, force=force, inputs=[run], what=flag)  # before the model loads
    # a QLoRA run's adapter is merged into (and served beside) the unquantized base
    trained = load_run(str(run), cache_dir, what="RUN_DIR", unquantized=True)
    model, tok, run_cfg = trained.model, trained.tokenizer, trained.config
    name = run_cfg.model.name_or_path
    resolved = resolve_base(run_cfg.model, cache_dir)
    local_only = name.startswith("embedded:") or wants_twin(run_cfg.model)
    if run_cfg.model.get("chat_template"):
        tok.chat_template = run_cfg.model.chat_template  # the template the adapter was trained with
    target = Path(out).expanduser()
    info = {"run": str(run.resolve()), "base": resolved if wants_twin(run_cfg.model) else name,
            "kind": "merged" if merge else "adapter"}
    with atomic_dir(target, force=force, inputs=[run], writer=f"rolecraft export {flag}", what=flag) as tmp:
        if merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
        else:
            shutil.copytree(run / "adapter", tmp, dirs_exist_ok=True)
            cfg_path = tmp / "adapter_config.json"
            acfg = read_json(cfg_path)
            # a hub id stays portable; the embedded tiny model and twins exist only as local directories
            acfg["base_model_name_or_path"] = base or (resolved if local_only else name)
            write_json(cfg_path, acfg)
            tok.save_pretrained(str(tmp))
            info["base_model_name_or_path"] = acfg["base_model_name_or_path"]
        write_json(tmp / "rolecraft_export.json", info)
    return info


def export_command(run_dir: str, merge_out: str | None, adapter_out: str | None, cache_dir: str,
                   base: str | None = None, force: bool = False) -> int:
    """``rolecraft export``: exactly one of a merged model or the adapter, and how to serve it."""
    if bool(merge_out) == bool(adapter_out):
        raise ConfigError("export: give exactly one of --merge OUT (full model) or --adapter OUT (adapter only)")
    out = merge_out or adapter_out
    info = export(run_dir, out, merge=bool(merge_out), cache_dir=cache_dir, base=base, force=force)
    print(f"wrote the {info['kind']} model of {info['run']} to {out}")
    if merge_out:
        print(f"serve it: vllm serve {out} --served-model-name NAME   (then any OpenAI client at http://HOST:8000/v1)")
    else:
        print(f"serve it: vllm serve {info['base_model_name_or_path']} --enable-lora --lora-modules NAME={out}")
    return 0
