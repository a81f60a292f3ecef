"""Thin entry point: `python train.py data=hybrid emotions=off` (see README)."""

from rolecraft.train import main

if __name__ == "__main__":
    main()
