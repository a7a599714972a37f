"""Progress reports on long work, for users who asked for them with ``verbose``.

Nothing here prints unless ``verbose`` is above 0: estimators run by the
hundred inside ``GridSearchCV`` and ``cross_val_score``, which could not tell
them apart from a user's own call, so a silent default is the only one that
never floods a grid search.
"""

import time

from skorch.callbacks import Callback

__all__ = ["EpochProgress", "report_strategy"]


class EpochProgress(Callback):
    """Report how far a slow training epoch has got, every ``interval`` seconds.

    skorch's epoch table prints a row when an epoch ends; an epoch that takes
    minutes (a large network on a CPU) would print nothing meanwhile. This
    callback prints ``epoch 3: 40/120 batches, 15 s`` after each ``interval``
    seconds of a training epoch, and nothing for an epoch shorter than that
    (nor for its last batch: the epoch's row follows).

    Parameters
    ----------
    interval : float, default=5.0
        Seconds between two reports.
    sink : callable, default=print
        Receives each line.
    """

    def __init__(self, interval=5.0, sink=print):
        self.interval = interval
        self.sink = sink

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        self.epoch_start_ = self.last_report_ = time.monotonic()
        self.n_batches_ = _length(net.get_iterator(dataset_train, training=True))
        self.batches_done_ = 0

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        self.batches_done_ += 1
        now = time.monotonic()
        # The epoch's last batch is reported by the table row that follows.
        if (
            now - self.last_report_ < self.interval
            or self.batches_done_ == self.n_batches_
        ):
            return
        self.last_report_ = now
        of_total = "" if self.n_batches_ is None else f"/{self.n_batches_}"
        self.sink(
            f"epoch {len(net.history)}: {self.batches_done_}{of_total} batches, "
            f"{now - self.epoch_start_:.0f} s"
        )


def _length(iterator):
    try:
        return len(iterator)
    except TypeError:  # an iterable data set of unknown length
        return None


def report_strategy(function_name, position, n_strategies, name, result, seconds):
    """Print one line when a strategy's cross-validation has finished.

    Parameters
    ----------
    function_name : str
        Who reports, e.g. ``"compare_strategies"``.
    position, n_strategies : int
        This strategy's 1-based position, and how many there are.
    name : str
        The strategy's name.
    result : str
        Its scores, already formatted.
    seconds : float
        How long its cross-validation took.
    """
    print(
        f"[{function_name}] {position}/{n_strategies} {name}: {result} "
        f"({seconds:.1f} s)",
        flush=True,
    )
