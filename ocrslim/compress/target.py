"""An accuracy target the tool holds: `run.py --max_drop POINTS`.

After the strategy's first model, the drop is measured as deployed on Eval. When
it is larger than asked, the layers the sensitivity table ranks most harmful
(the all-but sweep: error removed by keeping one layer float) go back to float
and the strategy runs again. The number of layers given back is searched by
doubling (1, 2, 4, ...) until the target holds, then by bisection between the
last miss and the first hit: log2 attempts instead of one per layer, assuming
that more float layers never hurt (true up to noise). It stops when the target
holds, or when `max_float` more layers (default: half of them) are float and it still does not (then the
run ends non-zero: nothing is left to give back that would still be an int8
model worth deploying).
"""
import logging

from ..errors import UserError

log = logging.getLogger("ocrslim")


class TargetMissed(UserError):
    """--max_drop could not be met within the layers allowed back to float."""
    exit_code = 4

    def __init__(self, message, attempts):
        super().__init__(message)
        self.attempts = attempts


def points(drop):
    return round(100 * drop, 2)


def hold(max_drop, base_keep, ranking, max_float, attempt):
    """Search the fewest extra float layers that meet `max_drop` (points).

    attempt(keep_float) compresses with those layers float and returns a dict with at
    least "drop" (main metric, FP32 - int8, as deployed, as a fraction); it is called
    once with base_keep first. ranking() gives the layer names, most helpful to keep float
    first; it is called only when the first attempt misses. Returns (attempts, best index); raises TargetMissed with the
    attempts made when the target is not met."""
    attempts = []

    def run(k):
        keep = list(base_keep) + ranked[:k]
        got = dict(attempt(keep), extra_float=k, keep_float=keep)
        got["meets"] = points(got["drop"]) <= max_drop
        attempts.append(got)
        log.info("attempt %d: %d layer(s) float (+%d), drop %+.2f points as deployed: %s", len(attempts),
                 len(keep), k, points(got["drop"]), "meets the target" if got["meets"] else "misses it")
        return got["meets"]

    ranked = []
    if run(0):
        return attempts, 0
    ranked = [name for name in ranking() if name not in base_keep]
    # by default at most half the layers go back: beyond that it is hardly an int8 model
    limit = min(len(ranked) // 2 or 1 if max_float is None else max_float, len(ranked))
    lo, hi, k = 0, None, 1
    while k <= limit:  # doubling: the first hit bounds the search
        if run(k):
            hi = k
            break
        lo = k
        if k == limit:
            break
        k = min(2 * k, limit)
    if hi is None:
        raise TargetMissed(f"--max_drop {max_drop} points is not met: with {limit} more layer(s) in float the drop "
                           f"is still {points(attempts[-1]['drop']):+.2f} points (as deployed on Eval); allow more "
                           f"with --max_float, or use another strategy or more calibration data", attempts)
    while hi - lo > 1:  # bisection between the last miss and the first hit
        mid = (lo + hi) // 2
        if run(mid):
            hi = mid
        else:
            lo = mid
    best = next(i for i, a in enumerate(attempts) if a["extra_float"] == hi)
    return attempts, best
