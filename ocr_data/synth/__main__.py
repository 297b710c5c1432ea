"""`python -m ocr_data.synth ...`: generate a data set, then print where it went
and its counts as JSON."""
import json

from .cli import main

if __name__ == "__main__":
    res = main()
    print(json.dumps({k: res[k] for k in ("out", "det", "rec", "seconds")}, indent=1))
