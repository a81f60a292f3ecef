"""Thin entry point: `python evaluate.py benchmark=rolebench_zh answers=predictions ...` (see README)."""

from rolecraft.evaluate import main

if __name__ == "__main__":
    main()
