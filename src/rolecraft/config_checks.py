"""Range checks of a composed config, one function per entry point, pure Python.

Hydra and the typed schema (``config.py``) reject unknown keys, wrong types and values outside a
closed set of choices while the config composes. What a type cannot say is checked here, right
after composition and before anything heavy loads: ranks and batch sizes are positive,
probabilities lie in [0, 1], ``optim.micro_batch_size`` divides ``optim.batch_size``, a ``*_env`` key
names an environment variable rather than holding a key ... Each problem raises
:class:`~rolecraft.errors.ConfigError` with one line, ``key=value: what is wrong; what to do``.

- :func:`check_train`, :func:`check_evaluate`, :func:`check_construct`, :func:`check_chat`: one per
  entry point (``cfg`` is the composed DictConfig, or anything with the same attributes);
- :func:`refuse_secret_overrides`: the command line, before Hydra records it in ``.hydra/``;
- :func:`check_env_name`: one ``*_env`` value.

Import cost: the standard library and ``rolecraft.errors`` / ``rolecraft.rundir`` only (plus the torch-free
``rolecraft.modeling.twins`` / ``rolecraft.modeling.quant`` tables, imported inside :func:`check_model`).
"""

from __future__ import annotations

import math

from rolecraft.errors import ConfigError
from rolecraft.rundir import ENV_NAME, looks_like_key, redact_url

# the construction stages in their order (rolecraft.construct.stages.STAGES; a test keeps them equal)
# what Lightning's Trainer(precision=...) accepts
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16")
# Lightning's ModelParallelStrategy (our FSDP2) accepts 32-true, bf16-mixed, bf16-true, 16-true only
FSDP_PRECISIONS_REFUSED = ("16-mixed", "16", "64-true", "64", "transformer-engine", "transformer-engine-float16")
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")


def _show(value) -> str:
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return str(value)


def _fail(key: str, value, problem: str) -> None:
    raise ConfigError(f"{key}={_show(value)}: {problem}")


def _number(key: str, value, *, low=None, high=None, low_open=False, high_open=False, optional=False,
            integer=False, fix: str = "") -> None:
    """``value`` lies in [low, high] (an open end with ``*_open``); None is allowed when ``optional``."""
    if value is None:
        if not optional:
            _fail(key, "null", f"a number is required{'; ' + fix if fix else ''}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, value, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        _fail(key, value, "must be a finite number")
    if integer and int(value) != value:
        _fail(key, value, "must be a whole number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        if low is not None and high is not None:
            want = f"must be in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            want = ("must be positive" if low == 0 and low_open
                    else f"must be {'above' if low_open else 'at least'} {low}")
        else:
            want = f"must be {'below' if high_open else 'at most'} {high}"
        _fail(key, value, want + (f"{' or null' if optional else ''}; {fix}" if fix else (" or null" if optional else "")))


def _positive_int(key, value, optional=False, fix=""):
    _number(key, value, low=1, integer=True, optional=optional, fix=fix)


def _count(key, value, optional=False, fix=""):
    _number(key, value, low=0, integer=True, optional=optional, fix=fix)


def _probability(key, value, optional=False, fix=""):
    _number(key, value, low=0, high=1, optional=optional, fix=fix)


# ---- secrets ---------------------------------------------------------------------------------


def check_env_name(key: str, value) -> None:
    """A ``*_env`` value must name an environment variable ('' = no key). The value is never echoed
    when it looks like a key."""
    if value is None or value == "":
        return
    if looks_like_key(value):
        raise ConfigError(f"{key} looks like a key, not the name of an environment variable: put the key in an "
                          "environment variable and name it here (e.g. OPENAI_API_KEY)")
    if not ENV_NAME.match(str(value)):  # unreachable today (looks_like_key covers it); kept for clarity
        raise ConfigError(f"{key} is not the name of an environment variable: use letters, digits and _")


def refuse_secret_overrides(args: list[str]) -> None:
    """Refuse a command line that types a key where a variable's name belongs (``llm.api_key_env=sk-...``),
    before Hydra records the command line in ``.hydra/overrides.yaml``."""
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key.split(".")[-1].endswith("_env"):
            check_env_name(key, value.strip().strip("'\""))


def _walk_env_keys(node, prefix: str = ""):
    """(dotted key, value) of every ``*_env`` key in a DictConfig/dict tree."""
    try:
        items = node.items_ex(resolve=False) if hasattr(node, "items_ex") else node.items()
    except Exception:  # noqa: BLE001 - not a mapping
        return
    for k, v in items:
        path = f"{prefix}{k}"
        if isinstance(k, str) and k.endswith("_env"):
            yield path, v
        elif hasattr(v, "items"):
            yield from _walk_env_keys(v, path + ".")


def check_secrets(cfg) -> None:
    for key, value in _walk_env_keys(cfg):
        check_env_name(key, value)


# ---- shared sections -------------------------------------------------------------------------


def check_endpoint(prefix: str, ep) -> None:
    check_env_name(f"{prefix}.api_key_env", ep.api_key_env)
    url = ep.base_url
    if url is not None and not str(url).startswith(("http://", "https://")):
        _fail(f"{prefix}.base_url", url, "must start with http:// or https:// (e.g. http://localhost:8000/v1), "
                                         "or be null for api.openai.com")
    _positive_int(f"{prefix}.concurrency", ep.concurrency)
    _count(f"{prefix}.max_retries", ep.max_retries)
    _number(f"{prefix}.timeout", ep.timeout, low=0, low_open=True, fix="seconds per request")
    _number(f"{prefix}.backoff_base", ep.backoff_base, low=0)
    _number(f"{prefix}.backoff_max", ep.backoff_max, low=0)


def check_generation(prefix: str, g, *, local: bool = True) -> None:
    """``local``: the answers come from a model here (transformers' sampling needs temperature > 0)."""
    _number(f"{prefix}.temperature", g.temperature, low=0)
    if local and g.do_sample and g.temperature == 0:
        _fail(f"{prefix}.temperature", g.temperature,
              f"sampling needs a temperature above 0; set {prefix}.do_sample=false for greedy decoding")
    _number(f"{prefix}.top_p", g.top_p, low=0, high=1, low_open=True)
    _positive_int(f"{prefix}.max_new_tokens", g.max_new_tokens)
    _number(f"{prefix}.repetition_penalty", g.repetition_penalty, low=0, low_open=True, fix="1.0 = no penalty")


def check_prompt(prefix: str, p, *, check_endpoint_ranges: bool = True) -> None:
    _count(f"{prefix}.num_exemplars", p.num_exemplars, fix="0 = the profile only")
    r = p.retrieval
    _positive_int(f"{prefix}.retrieval.k", r.k)
    _positive_int(f"{prefix}.retrieval.budget", r.budget, fix="characters of retrieved passages per prompt")
    if not list(r.sources):
        _fail(f"{prefix}.retrieval.sources", "[]", "index at least one of script, profile")
    if check_endpoint_ranges and r.backend == "openai":
        check_endpoint(f"{prefix}.retrieval.endpoint", r.endpoint)


def check_model(prefix: str, m) -> None:
    if not str(m.name_or_path or "").strip():
        _fail(f"{prefix}.name_or_path", "''", "name a hub id, a local directory or embedded:tiny")
    from rolecraft.modeling.quant import check_quantization_static
    from rolecraft.modeling.twins import twin_spec, wants_twin

    if wants_twin(m):
        twin_spec(m)  # remote-code and unknown presets: one line, before anything loads
    check_quantization_static(m, prefix)


def check_lora_targets(value) -> None:
    """``lora.target_modules``: null, ``all-linear``, or a non-empty list of module names."""
    if value is None:
        return
    if isinstance(value, str):
        if value.strip() != "all-linear":
            _fail("lora.target_modules", value, "give a list of module names, e.g. [q_proj,v_proj], all-linear, "
                                                "or null for the model preset's lora_targets")
        return
    if isinstance(value, (bool, int, float)) or not hasattr(value, "__iter__"):
        _fail("lora.target_modules", value, "give a list of module names, all-linear, or null")
    names = list(value)
    if not names:
        _fail("lora.target_modules", "[]", "name at least one module, or null for the model preset's lora_targets")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        _fail("lora.target_modules", names, "every entry must be a module name such as q_proj")
    if "all-linear" in names and len(names) > 1:
        _fail("lora.target_modules", names, "all-linear already covers every linear layer: use it alone")


def check_seed(value) -> None:
    _number("seed", value, low=0, high=2**32 - 1, integer=True)


def check_logger(lg) -> None:
    if lg.name == "wandb" and str(lg.wandb.mode) not in WANDB_MODES:
        _fail("logger.wandb.mode", lg.wandb.mode, f"use one of {', '.join(WANDB_MODES[:3])}")


# ---- entry points ----------------------------------------------------------------------------


def check_train(cfg) -> None:
    """train.py: every value that composes but cannot train."""
    check_secrets(cfg)
    d = cfg.data
    _probability("data.specific_ratio", d.specific_ratio, optional=True, fix="the share of specific samples")
    _positive_int("data.max_source_length", d.max_source_length)
    _positive_int("data.max_target_length", d.max_target_length)
    _positive_int("data.max_train_samples", d.max_train_samples, optional=True)
    _positive_int("data.max_eval_samples", d.max_eval_samples, optional=True)
    _positive_int("data.pack_length", d.pack_length, optional=True)
    _number("data.dialogue_ratio", d.dialogue_ratio, low=0, high=1, low_open=True, high_open=True, optional=True,
            fix="the share of dialogue samples in the training mix, or null for all")
    from rolecraft.data.dialogue import options_from_config

    options_from_config(d).check()  # window, stride, scene shares: one rule for the CLI and the library
    _count("data.num_workers", d.num_workers)
    check_prompt("prompt", cfg.prompt)
    check_model("model", cfg.model)

    lo = cfg.lora
    _positive_int("lora.r", lo.r, fix="the LoRA rank, e.g. 8")
    _number("lora.alpha", lo.alpha, low=0, low_open=True, fix="e.g. 32")
    _number("lora.dropout", lo.dropout, low=0, high=1, high_open=True)
    check_lora_targets(lo.target_modules)
    mts = list(lo.modules_to_save or [])
    if any(not isinstance(n, str) or not n.strip() for n in mts):
        _fail("lora.modules_to_save", mts, "list module names such as [lm_head]")

    o = cfg.optim
    _number("optim.lr", o.lr, low=0, low_open=True, fix="e.g. 2e-4")
    betas = list(o.betas)
    if len(betas) != 2:
        _fail("optim.betas", betas, "give two numbers, e.g. [0.9,0.999]")
    for i, b in enumerate(betas):
        _number(f"optim.betas[{i}]", b, low=0, high=1, high_open=True)
    _number("optim.weight_decay", o.weight_decay, low=0)
    _number("optim.eps", o.eps, low=0, low_open=True)
    _positive_int("optim.batch_size", o.batch_size)
    _positive_int("optim.micro_batch_size", o.micro_batch_size)
    if o.batch_size % o.micro_batch_size:
        _fail("optim.micro_batch_size", o.micro_batch_size,
              f"must divide optim.batch_size={o.batch_size} (a step is whole micro-batches); use a divisor of it")
    _count("optim.warmup_steps", o.warmup_steps)
    _number("optim.gradient_clip_val", o.gradient_clip_val, low=0, fix="0 = no clipping")

    t = cfg.trainer
    _number("trainer.max_steps", t.max_steps, low=-1, integer=True,
            fix="optimizer steps; 0 = evaluate only, -1 = train for trainer.max_epochs")
    _number("trainer.max_epochs", t.max_epochs, low=-1, integer=True, fix="-1 = bounded by trainer.max_steps")
    if t.max_steps == -1 and t.max_epochs == -1:
        _fail("trainer.max_steps", -1, "-1 means 'train for trainer.max_epochs', but trainer.max_epochs=-1 too; "
                                       "set trainer.max_steps>=0 or trainer.max_epochs>=1")
    if t.max_steps == -1 and o.scheduler != "constant":
        _fail("optim.scheduler", o.scheduler, "the schedule's length is trainer.max_steps, which is -1; "
                                              "set trainer.max_steps or use optim.scheduler=constant")
    if t.max_steps >= 0 and o.warmup_steps > t.max_steps:
        _fail("optim.warmup_steps", o.warmup_steps, f"is longer than trainer.max_steps={t.max_steps}; lower it")
    _positive_int("trainer.num_nodes", t.num_nodes)
    dev = t.devices
    if isinstance(dev, bool) or not (dev == "auto" or (isinstance(dev, int) and (dev >= 1 or dev == -1))
                                     or (isinstance(dev, str) and dev.strip().lstrip("-").replace(",", "").isdigit())
                                     or (hasattr(dev, "__len__") and not isinstance(dev, str) and len(dev) > 0)):
        _fail("trainer.devices", dev, "use a count >= 1, -1 (all), auto, or a list of device indices")
    if str(t.precision) not in PRECISIONS:
        _fail("trainer.precision", t.precision, f"use one of {', '.join(PRECISIONS[2:8])}")
    strategy = str(t.strategy)
    if strategy.startswith("fsdp") and strategy != "fsdp":
        _fail("trainer.strategy", strategy, "Lightning's FSDP1 variants are not supported (CUDA only, and their "
                                            "state-dict hooks break the adapter export); use trainer.strategy=fsdp "
                                            "(FSDP2)")
    if strategy == "fsdp" and str(t.precision) in FSDP_PRECISIONS_REFUSED:
        _fail("trainer.precision", t.precision, "trainer.strategy=fsdp (FSDP2) runs with 32-true, bf16-mixed, "
                                                "bf16-true or 16-true; 16-mixed's gradient scaler is not supported")
    _positive_int("trainer.val_check_interval", t.val_check_interval, optional=True, fix="steps between validations")
    _number("trainer.limit_val_batches", t.limit_val_batches, low=0, optional=True,
            fix="a fraction in [0, 1] or a whole number of batches")
    if t.limit_val_batches is not None and t.limit_val_batches > 1 and int(t.limit_val_batches) != t.limit_val_batches:
        _fail("trainer.limit_val_batches", t.limit_val_batches, "above 1 it counts batches: use a whole number")
    _positive_int("trainer.log_every_n_steps", t.log_every_n_steps)
    _positive_int("trainer.checkpoint_every_n_steps", t.checkpoint_every_n_steps)

    e = cfg.eval
    _positive_int("eval.batch_size", e.batch_size)
    check_generation("eval.generation", e.generation)
    check_logger(cfg.logger)
    check_seed(cfg.seed)


def check_evaluate(cfg) -> None:
    """evaluate.py."""
    check_secrets(cfg)
    b = cfg.benchmark
    _positive_int("benchmark.max_samples", b.max_samples, optional=True, fix="items per kind; null = all")
    _positive_int("benchmark.reward_max_length", b.reward_max_length)
    a = cfg.answers
    _positive_int("answers.batch_size", a.batch_size)
    _positive_int("answers.max_source_length", a.max_source_length)
    _number("answers.min_matched", a.min_matched, low=0, high=1,
            fix="the least share of the predictions that must join benchmark items, e.g. 0.1")
    if a.source == "openai":
        check_endpoint("answers.endpoint", a.endpoint)
    if a.source in ("model", "run"):
        check_model("model", cfg.model)
        check_generation("generation", cfg.generation)
    else:
        check_generation("generation", cfg.generation, local=False)
    check_prompt("prompt", cfg.prompt)
    r = cfg.rpcs
    _positive_int("rpcs.batch_size", r.batch_size)
    if r.backend == "openai":
        check_endpoint("rpcs.endpoint", r.endpoint)
    j = cfg.judge
    _positive_int("judge.max_items", j.max_items, optional=True, fix="questions judged; null = all")
    _positive_int("judge.repeats", j.repeats)
    _positive_int("judge.max_attempts", j.max_attempts)
    _number("judge.max_failed", j.max_failed, low=0, high=1,
            fix="the largest share of failed verdicts a run may have, e.g. 0.5 (1.0 = any)")
    _number("judge.temperature", j.temperature, low=0, high=2)
    _positive_int("judge.max_tokens", j.max_tokens)
    if j.mode != "none":
        check_endpoint("judge.endpoint", j.endpoint)
    check_logger(cfg.logger)
    check_seed(cfg.seed)


def check_construct(cfg) -> None:
    """construct.py."""
    check_secrets(cfg)  # stage= is checked against the stage table by construct.main.stages_of
    c = cfg.construct
    if not str(c.input or "").strip():
        _fail("construct.input", "''", "name a RoleInstruct directory or embedded:demo")
    _positive_int("construct.max_attempts", c.max_attempts)
    _positive_int("construct.annotate.batch_size", c.annotate.batch_size)
    if not list(c.profile.fields):
        _fail("construct.profile.fields", "[]", "list the profile fields to fill")
    _positive_int("construct.profile.dialogue_chars", c.profile.dialogue_chars)
    _positive_int("construct.qa.rounds", c.qa.rounds)
    _positive_int("construct.qa.questions", c.qa.questions)
    _positive_int("construct.qa.excerpt_chars", c.qa.excerpt_chars)
    g = c.general
    _positive_int("construct.general.max_instructions", g.max_instructions, optional=True)
    _positive_int("construct.general.answers", g.answers)
    _count("construct.general.shots", g.shots)
    _positive_int("construct.general.max_chars", g.max_chars)
    llm = cfg.llm
    check_endpoint("llm", llm)
    _number("llm.temperature", llm.temperature, low=0, high=2)
    _number("llm.top_p", llm.top_p, low=0, high=1, low_open=True)
    _positive_int("llm.max_tokens", llm.max_tokens, optional=True)
    for key in ("requests_per_minute", "tokens_per_minute"):
        _number(f"llm.{key}", getattr(llm, key), low=0, low_open=True, optional=True, fix="null = no limit")
    _number("llm.burst_seconds", llm.burst_seconds, low=0, low_open=True)
    _number("llm.price_input", llm.price_input, low=0, optional=True, fix="USD per 1M prompt tokens")
    _number("llm.price_output", llm.price_output, low=0, optional=True, fix="USD per 1M answer tokens")
    _number("seed", cfg.seed, low=0, integer=True)


def check_chat(cfg) -> None:
    """chat.py."""
    check_secrets(cfg)
    _count("history_budget", cfg.history_budget, fix="characters of conversation kept")
    if cfg.source == "openai":
        check_endpoint("endpoint", cfg.endpoint)
    else:
        check_model("model", cfg.model)
    check_generation("generation", cfg.generation, local=cfg.source != "openai")
    check_prompt("prompt", cfg.prompt)
    check_seed(cfg.seed)


# ---- used by the entry points ----------------------------------------------------------------


def one_line(error) -> str:
    """An error as the one line an entry point prints: whitespace folded, URL credentials stripped."""
    return redact_url(" ".join(str(error).split()))


def refuse_secret_command_line(args: list[str]) -> None:
    """:func:`refuse_secret_overrides`, printing the error and exiting 2 (for ``main()``, before Hydra)."""
    import sys

    try:
        refuse_secret_overrides(args)
    except ConfigError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


def scrub_hydra_records() -> None:
    """Inside a Hydra task: rewrite what Hydra recorded before the task started (``.hydra/*.yaml`` of the
    run, ``multirun.yaml`` of a sweep) without secrets. A no-op outside Hydra or with
    ``hydra.output_subdir=null``."""
    from pathlib import Path

    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except Exception:  # noqa: BLE001 - not inside a Hydra run
        return
    from rolecraft.rundir import redact_hydra_dir, redact_yaml_file

    if hc.output_subdir is not None:
        redact_hydra_dir(Path(hc.runtime.output_dir), hc.output_subdir)
    if str(hc.mode) == "RunMode.MULTIRUN":
        redact_yaml_file(Path(hc.sweep.dir) / "multirun.yaml")
