"""Importers: convert published role-play data layouts into the canonical RoleInstruct format.

Each importer returns ``(RoleInstruct, defects)``: it keeps going where it safely can and
reports every quirk it repaired or skipped as a :class:`Defect` (``file:line: message``); when
nothing can be imported it raises :class:`ImportFailed` carrying the defects. Shared pieces live
in :mod:`.base`, emotion spellings in :mod:`rolecraft.data.emotions`.
Every importer takes the source path as its first argument; format-specific options are
keyword arguments with defaults (``cped``: ``mapping``, ``min_utterances``; ``messages``: ``fmt``,
``character``, ``character_field``, ``profile``, ``single_kind``).
"""

from rolecraft.data.emotions import EMOTION_ALIASES
from rolecraft.data.importers.base import Defect, ImportFailed
from rolecraft.data.importers.cped import CPED_TO_EMOTION, import_cped
from rolecraft.data.importers.messages import import_messages
from rolecraft.data.importers.roleinstruct_v1 import import_roleinstruct_v1

IMPORTERS = {"roleinstruct-v1": import_roleinstruct_v1, "cped": import_cped, "messages": import_messages}

__all__ = ["CPED_TO_EMOTION", "EMOTION_ALIASES", "IMPORTERS", "Defect", "ImportFailed", "import_command",
           "import_cped", "import_messages", "import_roleinstruct_v1"]


def _counts_text(counts: dict) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n)


def import_command(fmt: str, src: str, out: str, report: str | None = None, mapping: str | None = None,
                   min_utterances: int | None = None, force: bool = False, allow_partial: bool = False,
                   messages_options: dict | None = None) -> int:
    """``rolecraft data import``: convert, write the dataset, print defects (stderr) and a summary.

    ``--out`` is checked before any reading (:func:`rolecraft.fileio.check_output_dir`). A
    character folder skipped or imported without a part is an error (exit 2, after writing what
    was imported) unless ``allow_partial``: an import never reports success after losing data.
    """
    import sys
    import time
    from collections import Counter
    from pathlib import Path

    from rolecraft.console import is_verbose
    from rolecraft.data import schema
    from rolecraft.data.importers.base import summarise_defects
    from rolecraft.data.stats import dataset_stats
    from rolecraft.errors import DataError, RolecraftError
    from rolecraft.fileio import check_output_dir

    inputs = [Path(src).expanduser(), Path(mapping).expanduser() if mapping else None,
              Path(report).expanduser() if report else None]
    check_output_dir(out, force=force, inputs=inputs)

    options: dict = {}
    if fmt == "cped":
        if mapping:
            options["mapping"] = Path(mapping).expanduser()
        if min_utterances is not None:
            options["min_utterances"] = min_utterances
    elif mapping or min_utterances is not None:
        raise RolecraftError(f"--mapping and --min-utterances apply to 'cped' only, not {fmt!r}")
    given = {k: v for k, v in (messages_options or {}).items() if v is not None}
    if fmt == "messages":
        options.update(given)
        if given.get("profile"):
            inputs.append(Path(given["profile"]).expanduser())
    elif given:
        raise RolecraftError(f"--{', --'.join(k.replace('_', '-') for k in given)} apply to 'messages' only, not {fmt!r}")
    t0 = time.perf_counter()
    try:
        ds, defects = IMPORTERS[fmt](Path(src).expanduser(), **options)
    except ImportFailed as e:
        for line in summarise_defects(e.defects, None, show_all=is_verbose()):
            print(line, file=sys.stderr)
        raise
    written = schema.save(ds, Path(out).expanduser(), force=force, inputs=inputs, writer=f"rolecraft data import {fmt}")
    seconds = time.perf_counter() - t0
    for line in summarise_defects(defects, report, show_all=is_verbose()):
        print(line, file=sys.stderr)
    stats = dataset_stats(ds)
    counts = Counter(d.kind for d in defects)
    if fmt == "cped":
        summary = (f"imported {fmt} from {src} -> {written}: {stats['utterances']} utterances, "
                   f"{stats['dialogues']} dialogues, {stats['characters']} characters; emotions: "
                   f"{_counts_text(stats['emotions'])} ({seconds:.1f}s)")
    elif fmt == "messages":
        kinds = Counter(s.kind for s in ds.samples)
        summary = (f"imported {fmt} from {src} -> {written}: {stats['characters']} characters, "
                   f"{len(ds.samples)} samples ({_counts_text(kinds)}; splits "
                   f"{_counts_text(Counter(s.split for s in ds.samples))}) ({seconds:.1f}s)")
    else:
        summary = (f"imported {fmt} from {src} -> {written}: {stats['characters']} characters, "
                   f"{stats['utterances']} utterances, {stats['specific_instructions']} specific + "
                   f"{stats['general_instructions']} general samples, {stats['responses']} references "
                   f"({seconds:.1f}s)")
    defect_line = f"{len(defects)} defects" + (": " + _counts_text(counts) if defects else "")
    skipped, partial = counts["character_skipped"], counts["character_partial"]
    print(summary)
    if fmt == "roleinstruct-v1":
        summary += "\n" + (f"characters: {stats['characters'] + skipped} found, {stats['characters']} imported "
                           f"({partial} partial), {skipped} skipped; records: profiles {stats['characters']}, "
                           f"script lines {stats['utterances']}, specific {stats['specific_instructions']}, "
                           f"general {stats['general_instructions']}")
        print(summary.split("\n")[-1])
    print(defect_line)
    if report:
        from rolecraft.fileio import write_json, write_text

        path = Path(report).expanduser()
        if path.suffix.lower() == ".json":
            write_json(path, {"format": fmt, "source": str(src), "out": str(written),
                              "defect_counts": dict(sorted(counts.items())),
                              "defects": [d.to_dict() for d in defects], "stats": stats})
        else:
            write_text(path, "".join(f"{d}\n" for d in defects) + f"{summary}\n{defect_line}\n")
        print(f"report written to {path}")
    if fmt == "messages":
        from rolecraft.data.importers.messages import SKIP_KINDS

        lost = sum(n for k, n in counts.items() if k in SKIP_KINDS)
        if lost and allow_partial:
            print(f"warning: {lost} row(s) skipped (listed above); accepted with --allow-partial", file=sys.stderr)
        elif lost:
            raise DataError(f"{src}: {lost} row(s) skipped (listed above); {written} holds the rest — fix those rows, "
                            "or pass --allow-partial to accept a partial import")
    if skipped or partial:
        what = ", ".join(x for x in (f"{skipped} character folder(s) skipped" if skipped else "",
                                     f"{partial} imported without a part" if partial else "") if x)
        if allow_partial:
            print(f"warning: {what} (see the characters listed above); "
                  f"accepted with --allow-partial", file=sys.stderr)
        else:
            raise DataError(f"{src}: {what} (see the characters listed above); "
                            f"{written} holds the rest — add the missing files, or pass --allow-partial to accept "
                            f"a partial import")
    return 0
