"""`rolecraft report EXPERIMENT --runs DIR [--wandb ENTITY/PROJECT] --out OUT`: the paper's tables
from run directories (or W&B), ours beside the published values, with plots and an HTML dashboard.

collect (run dirs or W&B) -> aggregate (rows x metrics, seeds: mean, std, n) -> tables (Markdown,
LaTeX, CSV), bootstrap (paired, over test items, for ablations), plots (PNG), dashboard (HTML).
Reports read files, never live training objects.
"""
