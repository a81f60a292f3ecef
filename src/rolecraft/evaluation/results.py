"""Answers joined with their benchmark items as run-directory rows, and written out.

train.py's end-of-run evaluation and evaluate.py make their ``samples.jsonl`` here, so both
kinds of run directory have the same rows (``rolecraft.rundir.SAMPLE_FIELDS`` + scores).
"""

from __future__ import annotations

from pathlib import Path

from rolecraft.evaluation.answers import Answers
from rolecraft.evaluation.benchmarks import Benchmark


def result_rows(bench: Benchmark, answers: Answers) -> list[dict]:
    from rolecraft.rundir import sample_row

    return [sample_row(it.key, it.character, it.kind, it.question, it.references, answers.predictions[it.key],
                       category=it.category, prompt=answers.prompts.get(it.key)) for it in bench.items]


def write_results(out: Path, bench: Benchmark, rows: list[dict]) -> None:
    from rolecraft.fileio import write_json
    from rolecraft.rundir import write_samples

    write_samples(out, rows)
    if bench.profiles:
        write_json(Path(out) / "characters.json", bench.profiles)
