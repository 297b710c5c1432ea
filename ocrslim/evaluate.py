"""The one evaluation loop, shared by eval.py and the ACT eval callback in run.py."""
import logging
import time

from tqdm import tqdm

from .data import batches, stack_images

log = logging.getLogger("ocrslim")


def evaluate(predict, samples, task, batch_size=1, desc="eval", progress=True):
    """Run `predict` over every sample and return the task's metrics.

    predict: images (float32 NCHW) -> list of numpy outputs.
    task: a fresh DetTask/RecTask instance (holds the metric state).
    Returns {"metrics": {...}, "images": n, "skipped": n, "seconds": s, "per_item": [...]}; per_item
    is what stats.py resamples (det: [gt, pred, matched] per image; rec: 1/0 per crop).
    """
    start = time.time()
    task.metric.reset()
    seen = skipped = 0
    with tqdm(total=len(samples), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch, n_skipped in batches(samples, batch_size):
            skipped += n_skipped
            if batch:
                task.update(predict(stack_images(batch)), batch)
                seen += len(batch)
            bar.update(len(batch) + n_skipped)
    if skipped:
        log.warning("skipped %d of %d images that could not be read or decoded", skipped, len(samples))
    return {"metrics": task.metric.result(), "images": seen, "skipped": skipped,
            "seconds": round(time.time() - start, 3), "per_item": task.metric.items()}
