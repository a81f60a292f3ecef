"""Install-time build of the native Rouge-L tokenizer + LCS (src/rolecraft/evaluation/tokenlcs.c).

Without a C compiler the install still succeeds: scoring falls back to the Python path (same
scores, slower) and says so once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_BUILDER = Path(__file__).parent / "src" / "rolecraft" / "evaluation" / "tokenlcs_build.py"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        spec = importlib.util.spec_from_file_location("tokenlcs_build", _BUILDER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            lib = module.build()
        except RuntimeError as exc:
            self.app.display_warning(f"rolecraft: native Rouge-L not built ({exc}); the Python path will be used")
            return
        if version != "editable":  # an editable install loads it from the source tree
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(lib)] = f"rolecraft/evaluation/{lib.name}"
