"""Importers: convert published role-play data layouts into the canonical RoleInstruct format.

Each importer returns ``(RoleInstruct, defects)``: it keeps going where it safely can and
reports every quirk it repaired or skipped as a :class:`Defect` (``file:line: message``); when
nothing can be imported it raises :class:`ImportFailed` carrying the defects. Shared pieces live
in :mod:`.base`, emotion spellings in :mod:`rolecraft.data.emotions`.
Every importer takes the source path as its first argument; format-specific options are
keyword arguments with defaults (``cped``: ``mapping``, ``min_utterances``).
"""

from rolecraft.data.emotions import EMOTION_ALIASES
from rolecraft.data.importers.base import Defect, ImportFailed
from rolecraft.data.importers.cped import CPED_TO_EMOTION, import_cped
from rolecraft.data.importers.roleinstruct_v1 import import_roleinstruct_v1

IMPORTERS = {"roleinstruct-v1": import_roleinstruct_v1, "cped": import_cped}

__all__ = ["CPED_TO_EMOTION", "EMOTION_ALIASES", "IMPORTERS", "Defect", "ImportFailed", "import_cped",
           "import_roleinstruct_v1"]
