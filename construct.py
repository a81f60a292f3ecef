"""Thin entry point: `python construct.py stage=annotate construct.input=DIR` (see README)."""

from rolecraft.construct.main import main

if __name__ == "__main__":
    main()
