"""The console commands of the installed package (pyproject.toml [project.scripts]); run.py,
eval.py and bench.py at the top of the repository call the same functions.

Importing this module imports ocrslim first, which binds zlib before paddle is loaded."""
from .errors import run_cli


def run():
    """ocrslim-run = python run.py: compress a model."""
    from .run_cli import main
    run_cli(main)


def evaluate():
    """ocrslim-eval = python eval.py: evaluate a model (or the det+rec pipeline)."""
    from .eval_cli import main
    run_cli(main)


def bench():
    """ocrslim-bench = python bench.py: latency, size and metric as deployed."""
    from .deploy.bench import main
    run_cli(main)
