"""Thin entry point: `python chat.py run=RUN_DIR character=NAME` (see README)."""

from rolecraft.chat import main

if __name__ == "__main__":
    main()
