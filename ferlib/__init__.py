"""ferlib: facial emotion recognition on FER-2013 — data, training runs, evaluation, detection, live pipeline.

Plain Python (TensorFlow/Keras, OpenCV, NumPy); it never imports Streamlit. Heavy modules are imported where
used, so `import ferlib` and the CLI's help stay fast.
"""

import os
import platform
import sys

# On Linux x86-64, TensorFlow turns its oneDNN kernels on by itself only on CPUs with neural-network instructions
# (VNNI, AVX-512 BF16, AMX). On AVX2-only CPUs they train the default network about 1.4x faster too
# (benchmarks/training_speed.py --onednn both), so ferlib asks for them before TensorFlow loads;
# TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "1.0.0"  # as pyproject.toml
