"""Lightning's tqdm progress bar, written to stderr.

Lightning writes its bars to stdout, where train.py prints only its JSON line of metrics. A
module-level class (not one made inside a function) so ``ddp_spawn`` can pickle it.
"""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


class StderrProgressBar(TQDMProgressBar):
    def _bar(self, desc: str, position: int, leave: bool, **kw) -> Tqdm:
        return Tqdm(desc=desc, position=position, disable=self.is_disabled, leave=leave, dynamic_ncols=True,
                    file=sys.stderr, bar_format=self.BAR_FORMAT, **kw)

    def init_sanity_tqdm(self) -> Tqdm:
        return self._bar(self.sanity_check_description, 2 * self.process_position, False)

    def init_train_tqdm(self) -> Tqdm:
        return self._bar(self.train_description, 2 * self.process_position, True, smoothing=0)

    def init_validation_tqdm(self) -> Tqdm:
        has_main_bar = self.trainer.state.fn != "validate"
        return self._bar(self.validation_description, 2 * self.process_position + has_main_bar, not has_main_bar)

    def init_predict_tqdm(self) -> Tqdm:
        return self._bar(self.predict_description, 2 * self.process_position, True, smoothing=0)

    def init_test_tqdm(self) -> Tqdm:
        return self._bar("Testing", 2 * self.process_position, True)
