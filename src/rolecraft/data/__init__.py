"""Data path: canonical RoleInstruct format, importers, mixing, prompts, tokenization, datamodule."""

from pathlib import Path

EMBEDDED_DEMO = "embedded:demo"


def resolve_data_root(root: str) -> Path:
    """The directory of a dataset: "embedded:demo" is the demo data shipped in the package."""
    if root == EMBEDDED_DEMO:
        return Path(__file__).resolve().parent / "demo"
    return Path(root).expanduser()
