"""Evaluation: generation, Rouge-L (RAW/CUS/SPE), and the metrics written to a run directory."""
