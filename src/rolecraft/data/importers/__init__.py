"""Importers: convert published role-play data layouts into the canonical RoleInstruct format.

Each importer returns ``(RoleInstruct, defects)``: it keeps going where it safely can and
reports every quirk it repaired or skipped as a :class:`Defect` (``file:line: message``).
"""

from rolecraft.data.importers.roleinstruct_v1 import (
    EMOTION_ALIASES,
    Defect,
    import_roleinstruct_v1,
)

IMPORTERS = {"roleinstruct-v1": import_roleinstruct_v1}

__all__ = ["Defect", "EMOTION_ALIASES", "IMPORTERS", "import_roleinstruct_v1"]
