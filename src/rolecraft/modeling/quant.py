"""QLoRA: the frozen base loaded quantized by bitsandbytes, checked before any weights load.

``model.quantization=4bit`` loads NF4 weights with double quantization and bf16 compute (the QLoRA
recipe), ``8bit`` LLM.int8 weights; peft's ``prepare_model_for_kbit_training`` then readies the model
(norms in fp32, input gradients, gradient checkpointing on). The LoRA adapter itself stays in full
precision, so it is saved, exported and merged against the unquantized base
(``rolecraft export --merge`` reloads the base unquantized).

Checks, in order, each a one-line :class:`~rolecraft.errors.ConfigError` (exit 2):

- :func:`check_quantization_static` (standard library only; run by ``config_checks.check_train``):
  bitsandbytes must be installed (``pip install 'rolecraft[gpu]'``);
- :func:`check_quantization_runtime` (imports torch, before the model loads): a CUDA GPU, or a
  bitsandbytes that really trains through a small quantized layer on this CPU
  (:func:`bitsandbytes_cpu_works`); a GPU run on ``trainer.accelerator=cpu`` is refused (the
  quantized weights live on the GPU).
"""

from __future__ import annotations

import importlib.util
import os

from rolecraft.errors import ConfigError

GPU_EXTRA = "pip install 'rolecraft[gpu]'"


def quantization(model_cfg) -> str:
    """``model.quantization`` as a plain string (``none`` for run records written before it existed)."""
    from rolecraft.modeling.twins import _get

    return str(_get(model_cfg, "quantization", "none") or "none")


def check_quantization_static(model_cfg, prefix: str = "model") -> None:
    q = quantization(model_cfg)
    if q == "none":
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{prefix}.quantization={q}: needs bitsandbytes, which is not installed in this environment; "
                          f"on a CUDA machine install the gpu extra ({GPU_EXTRA}), or train unquantized with "
                          f"{prefix}.quantization=none")


def bitsandbytes_cpu_works(q: str) -> bool:
    """Whether the installed bitsandbytes can *train* through a quantized layer on this CPU: a 64->32
    layer with bias, quantized here, run once in eval mode (as the packing probe and validation do)
    and then forward + backward in train mode; the input gradient must match the unquantized
    layer's. Tried, not guessed from a version number: bitsandbytes 0.50's CPU 4-bit path repacks the
    weights for inference on the first eval forward and cannot backpropagate afterwards (measured
    here; its 8-bit path passes)."""
    try:
        import torch
        import bitsandbytes as bnb

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            ref = torch.nn.Linear(64, 32, bias=True)
            x = torch.randn(3, 64)
        if q == "4bit":
            layer = bnb.nn.Linear4bit(64, 32, bias=True, compute_dtype=torch.bfloat16, quant_type="nf4")
            layer.weight = bnb.nn.Params4bit(ref.weight.data.clone(), requires_grad=False, quant_type="nf4")
        else:
            layer = bnb.nn.Linear8bitLt(64, 32, bias=True, has_fp16_weights=False)
            layer.weight = bnb.nn.Int8Params(ref.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
        layer.bias = torch.nn.Parameter(ref.bias.data.clone(), requires_grad=False)
        layer = layer.to("cpu").eval()
        with torch.no_grad():
            layer(x)
        layer.train()
        x.requires_grad_(True)
        layer(x).float().sum().backward()
        want = ref.weight.data.sum(0)
        return x.grad is not None and float((x.grad - want).abs().max()) < 0.1 * float(want.abs().max())
    except Exception:  # noqa: BLE001 - any failure means: no usable CPU training path
        return False


def check_quantization_runtime(model_cfg, accelerator: str | None = None, prefix: str = "model") -> None:
    q = quantization(model_cfg)
    if q == "none":
        return
    check_quantization_static(model_cfg, prefix)
    import torch

    if torch.cuda.is_available():
        if accelerator == "cpu":
            raise ConfigError(f"{prefix}.quantization={q}: trainer.accelerator=cpu, but bitsandbytes puts the quantized "
                              "weights on the GPU; add trainer=gpu (or trainer.accelerator=gpu)")
        return
    if bitsandbytes_cpu_works(q):
        return
    import bitsandbytes

    raise ConfigError(f"{prefix}.quantization={q}: no CUDA GPU here, and bitsandbytes {bitsandbytes.__version__} cannot train "
                      f"{q} layers on this CPU (a quantized layer failed a forward/backward test after an inference pass); "
                      f"run on a CUDA machine or use {prefix}.quantization=none")


def quantization_kwargs(model_cfg) -> dict:
    """``from_pretrained`` keyword arguments for the configured quantization ({} for none)."""
    q = quantization(model_cfg)
    if q == "none":
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    if q == "4bit":
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
    elif q == "8bit":
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    else:
        raise ConfigError(f"model.quantization={q!r}: use none, 4bit or 8bit")
    kwargs = {"quantization_config": bnb}
    if torch.cuda.is_available():  # each rank's weights on its own GPU
        kwargs["device_map"] = {"": f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"}
    return kwargs


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(model, "quantization_method", None))


def prepare_quantized(model):
    """peft's k-bit preparation: fp32 norms, input gradients, gradient checkpointing (non-reentrant)."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})
