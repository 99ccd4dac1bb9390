"""Dataset loading speed: the first (decoding) load and the cached load of the shared FER-2013 zip.

python benchmarks/data_loading.py [--data ../shared/data/fer2013.zip]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from common import SHARED_ZIP

from ferlib.data.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_ZIP))
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        try:
            dataset = load_dataset(arguments.data, cache_dir=cache)
        except ValueError as error:  # this benchmark times real data, so it cannot fall back to random faces
            sys.exit(f"error: {error}")
        first = time.perf_counter() - started
        started = time.perf_counter()
        load_dataset(arguments.data, cache_dir=cache)
        second = time.perf_counter() - started
    rate = len(dataset) / first
    print(f"images={len(dataset)} first_load_s={first:.2f} ({rate:.0f} images/s) cached_load_s={second:.2f}")


if __name__ == "__main__":
    main()
