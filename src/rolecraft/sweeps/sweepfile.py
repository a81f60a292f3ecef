"""W&B sweep files: generated from experiments, read back, checked, expanded in W&B's grid order.

W&B's grid search (the ``sweeps`` library) sorts parameters by name, takes the Cartesian product
of every ``values`` list (``value`` is a constant) and runs ``command`` with ``key=value`` per
parameter (``${args_no_hyphens}``; the value is Python's ``str()`` of the YAML value). Hydra then
parses those strings, which is why every parameter must be a Hydra override key of the schema.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from rolecraft.errors import ConfigError
from rolecraft.sweeps.experiments import PROGRAMS, Experiment

COMMAND = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
_CONTINUOUS = ("min", "max", "distribution", "mu", "sigma", "q", "a", "b", "probabilities")


def sweep_of(exp: Experiment) -> dict:
    if exp.program is None:
        raise ConfigError(f"experiment {exp.name!r} is not a grid of runs (program: null); it has no sweep")
    params: dict[str, dict] = {k: {"values": list(v)} for k, v in exp.grid.items()}
    if exp.seeds:
        params["seed"] = {"values": list(exp.seeds)}
    for k, v in exp.fixed.items():
        params[k] = {"value": v}
    params["tags"] = {"value": f"[{exp.name}]"}
    sweep = {"name": exp.name, "description": exp.title, "program": exp.program, "method": "grid"}
    if exp.metric:
        prefix = "test/" if exp.program == "train.py" and not exp.metric.startswith("test/") else ""
        sweep["metric"] = {"name": prefix + exp.metric, "goal": exp.goal}
    sweep["parameters"] = {k: params[k] for k in sorted(params)}
    sweep["command"] = list(COMMAND)
    return sweep


def render(exp: Experiment) -> str:
    import yaml

    head = (f"# Generated from experiments/{exp.name}.yaml by `rolecraft sweep generate`: edit that file, not this.\n"
            f"# W&B: wandb sweep {'sweeps/' + exp.name + '.yaml'}, then wandb agent ENTITY/PROJECT/SWEEP_ID on each GPU\n"
            f"# node (one run per grid point; never -m with strategy=ddp). Here: rolecraft sweep run-local sweeps/{exp.name}.yaml\n")
    return head + yaml.safe_dump(sweep_of(exp), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def load_sweep(path: str | Path) -> dict:
    """Read a sweep file and check what we can without Hydra: a grid of discrete values, a known program."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such sweep file")
    try:
        sweep = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{p}{':' + str(mark.line + 1) if mark else ''}: not valid YAML") from None
    if not isinstance(sweep, dict) or not isinstance(sweep.get("parameters"), dict) or not sweep["parameters"]:
        raise ConfigError(f"{p}: a sweep needs a 'parameters' mapping")
    if sweep.get("method") != "grid":
        raise ConfigError(f"{p}: method {sweep.get('method')!r}; RoleCraft reproduces tables with method: grid")
    if sweep.get("program") not in PROGRAMS:
        raise ConfigError(f"{p}: program {sweep.get('program')!r}; use one of {', '.join(PROGRAMS)}")
    for name, spec in sweep["parameters"].items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{p}: parameter {name!r} must be a mapping with 'values' or 'value'")
        cont = [k for k in _CONTINUOUS if k in spec]
        if cont:
            raise ConfigError(f"{p}: parameter {name!r} has a continuous distribution ({', '.join(cont)}); a grid "
                              f"sweep needs an explicit list: values: [...]")
        if "values" in spec:
            if not isinstance(spec["values"], list) or not spec["values"]:
                raise ConfigError(f"{p}: parameter {name!r}: 'values' must be a non-empty list")
            if any(v is None for v in spec["values"]):
                raise ConfigError(f"{p}: parameter {name!r}: a null value would reach Hydra as the string 'None'")
        elif "value" not in spec:
            raise ConfigError(f"{p}: parameter {name!r} needs 'values' (a list) or 'value'")
    return sweep


def expand(sweep: dict) -> list[list[str]]:
    """Each run's ``key=value`` list, in W&B's order (parameters by name, product of ``values``)."""
    names = sorted(sweep["parameters"])
    swept = [n for n in names if "values" in sweep["parameters"][n]]
    out = []
    for combo in itertools.product(*(sweep["parameters"][n]["values"] for n in swept)):
        chosen = dict(zip(swept, combo))
        out.append([f"{n}={chosen[n] if n in chosen else sweep['parameters'][n]['value']}" for n in names])
    return out


def config_name(program: str) -> str:
    return Path(program).stem


def check_composes(sweep: dict, path: str | Path, extra: list[str] | None = None) -> int:
    """Compose every grid point with Hydra against the schema; an unknown key or bad value names the
    parameter and the sweep file. Returns the number of points."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import rolecraft.config
    from rolecraft.paths import config_dir, quote_non_ascii_overrides

    rolecraft.config.register()
    points = expand(sweep)
    name = config_name(sweep["program"])
    with initialize_config_dir(config_dir(), version_base="1.3"):
        for point in points:
            overrides = quote_non_ascii_overrides([*point, *(extra or [])])
            try:
                compose(name, overrides=overrides)
            except (HydraException, OmegaConfBaseException, ValueError) as e:
                for ov in overrides:  # find the culprit: the first override that fails on its own
                    try:
                        compose(name, overrides=[ov])
                    except (HydraException, OmegaConfBaseException, ValueError) as e1:
                        key, _, value = ov.partition("=")
                        hint = (" (YAML 1.1 reads on/off as booleans: quote them, values: [\"on\", \"off\"])"
                                if value in ("True", "False") else "")
                        raise ConfigError(f"{path}: parameter {key!r} ({ov}) is not valid for {sweep['program']}{hint}: "
                                          f"{' '.join(str(e1).split())[:200]}") from None
                raise ConfigError(f"{path}: grid point {' '.join(overrides)} does not compose: "
                                  f"{' '.join(str(e).split())[:200]}") from None
    return len(points)


def generate_command(experiments: list[str], out: str | None = None, check: bool = False) -> int:
    """``rolecraft sweep generate``: write sweeps/*.yaml, or (``check``) exit 1 naming stale ones."""
    import sys

    from rolecraft.fileio import write_text
    from rolecraft.sweeps.experiments import known_experiments, load_experiment

    folder = Path(out) if out else Path(__file__).resolve().parents[3] / "sweeps"  # sweeps/ of the checkout
    stale = []
    for name in experiments or known_experiments():
        exp = load_experiment(name)
        if exp.program is None:
            continue
        target = folder / f"{exp.name}.yaml"
        text = render(exp)
        if check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target))
            continue
        write_text(target, text)
        print(f"wrote {target}")
    if stale:
        print(f"error: out of date with experiments/: {', '.join(stale)}; run `rolecraft sweep generate`",
              file=sys.stderr)
        return 1
    return 0


def expand_command(path: str, check: bool = False) -> int:
    """``rolecraft sweep expand``: one line of overrides per grid point, in W&B's order."""
    sweep = load_sweep(path)
    if check:
        check_composes(sweep, path)
    for point in expand(sweep):
        print(" ".join(point))
    return 0
