"""``--help`` of the Hydra entry points: only the entry point's own config groups, quickly.

Hydra's own ``--help`` lists every group found under ``conf/``, which all entry points share, so
``python train.py --help`` offered ``judge=``, ``answers=``, ``llm=`` and ``rpcs=``, which train.py
then refuses; it also builds a fresh copy of the config repository for every group it lists
(about a second here). The groups an entry point accepts are exactly those of its defaults list,
which Hydra records as ``hydra.runtime.choices`` when it composes; this module composes once,
lists those groups with their options, and fills Hydra's own help template (``hydra.help``, so
a ``hydra/help`` override still applies). ``--hydra-help`` stays Hydra's.

Only hydra/omegaconf are imported (the deep-learning stack stays out of ``--help``).
"""

from __future__ import annotations

import string
import sys


def own_groups(choices) -> list[str]:
    """The application's groups among Hydra's recorded choices (its own ``hydra/*`` left out)."""
    return sorted(g for g in choices if g != "hydra" and not g.startswith("hydra/"))


def render_help(config_name: str, overrides: list[str], resolve: bool = False) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from rolecraft.paths import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name=config_name):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # lets ${hydra:...} resolve under --resolve
        loader = GlobalHydra.instance().config_loader()
        groups = own_groups(cfg.hydra.runtime.choices)
        app_groups = "".join(f"{g}: {', '.join(sorted(loader.get_group_options(g)))}\n" for g in groups)
        template = str(cfg.hydra.help.template)
        if "HYDRA_CONFIG_GROUPS" in template:  # a custom template that wants Hydra's groups: Hydra's help
            return None
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        return string.Template(template).safe_substitute(
            APP_CONFIG_GROUPS=app_groups, CONFIG=OmegaConf.to_yaml(job, resolve=resolve),
            FLAGS_HELP=Hydra.format_args_help(get_args_parser()))


def maybe_print_help(config_name: str, argv: list[str]) -> bool:
    """When ``argv`` asks for ``--help``, print this entry point's help and return True (the
    caller exits); otherwise return False and leave everything to Hydra."""
    if "--help" not in argv and "-h" not in argv:
        return False
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    if not args.help or args.hydra_help:
        return False
    try:
        text = render_help(config_name, list(args.overrides), resolve=bool(args.resolve))
    except Exception as e:  # noqa: BLE001 - a bad override: one line, as Hydra would say it
        from rolecraft.config_checks import one_line

        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    if text is None:
        return False
    print(text)
    return True
