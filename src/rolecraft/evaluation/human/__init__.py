"""Human evaluation as in RoleCraft-GLM: blinded annotation sheets out, filled sheets in.

Annotators rate each answer 1-5 on three criteria: Communication Effectiveness (``ce``),
Consistency with the character profile (``consistency``) and Expressive Diversity (``ed``).

- :mod:`.rubric`   criteria, scale, sheet columns, file formats, the annotators' README;
- :mod:`.runs`     the answers of each model, from any run directory (train.py or evaluate.py);
- :mod:`.sheets`   export: sampling, blinding, CSV sheets, key.json, README.txt;
- :mod:`.ratings`  import: reading and checking filled sheets, aggregation, the table.

Only the standard library and numpy: the ``rolecraft human`` commands start fast.
"""

from rolecraft.evaluation.human.ratings import (
    Rating,
    aggregate,
    format_table,
    import_command,
    load_key,
    read_sheet,
    read_sheets,
    results_path,
)
from rolecraft.evaluation.human.rubric import (
    CRITERIA,
    CRITERION_NAMES,
    DEFAULT_KINDS,
    KEY_FORMAT,
    KINDS,
    RESULTS_FORMAT,
    SHEET_COLUMNS,
    HumanEvalError,
)
from rolecraft.evaluation.human.runs import Answer, Run, join_runs, load_profiles, load_run
from rolecraft.evaluation.human.sheets import ExportSummary, export, export_command, sample_keys

__all__ = ["CRITERIA", "CRITERION_NAMES", "DEFAULT_KINDS", "KEY_FORMAT", "KINDS", "RESULTS_FORMAT", "SHEET_COLUMNS",
           "Answer", "ExportSummary", "HumanEvalError", "Rating", "Run", "aggregate", "export", "export_command",
           "format_table", "import_command", "join_runs", "load_key", "load_profiles", "load_run", "read_sheet",
           "read_sheets", "results_path", "sample_keys"]
