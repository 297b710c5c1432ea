"""The one evaluation loop, shared by eval.py and the ACT eval callback in run.py."""
import logging
import time

from tqdm import tqdm

from .data import batches, stack_images
from .errors import UserError

log = logging.getLogger("ocrslim")


def evaluate(predict, samples, task, batch_size=1, desc="eval", progress=True):
    """Run `predict` over every sample and return the task's metrics.

    predict: images (float32 NCHW) -> list of numpy outputs.
    task: a fresh DetTask/RecTask instance (holds the metric state).
    Returns {"metrics": {...}, "images": n, "skipped": n, "seconds": s, "per_item": [...]}; per_item
    is what stats.py resamples (det: [gt, pred, matched] per image; rec: 1/0 per crop).
    Stops with a UserError when more items fail to load than Global.max_unreadable allows
    (Samples.check_unreadable), and never returns a metric over no items.
    """
    start = time.time()
    task.metric.reset()
    seen, skipped = 0, []
    check = getattr(samples, "check_unreadable", None)  # a cached subset (sensitivity) has none
    with tqdm(total=len(samples), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch, bad in batches(samples, batch_size):
            skipped += bad
            if bad and check:
                check(skipped)
            if batch:
                task.update(predict(stack_images(batch)), batch)
                seen += len(batch)
            bar.update(len(batch) + len(bad))
    if check:
        check(skipped, done=True)
    if seen == 0:
        raise UserError(f"{desc}: none of the {len(samples)} images could be loaded, so there is no metric")
    task.check_result()
    return {"metrics": task.metric.result(), "images": seen, "skipped": len(skipped),
            "seconds": round(time.time() - start, 3), "per_item": task.metric.items()}
