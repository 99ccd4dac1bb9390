"""ferlib: facial emotion recognition on FER-2013 — data, training runs, evaluation, detection, live pipeline.

Plain Python (TensorFlow/Keras, OpenCV, NumPy); it never imports Streamlit. Heavy modules are imported where
used, so `import ferlib` and the CLI's help stay fast.
"""

import os

# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX. On AVX2-only CPUs
# they train the default network about 1.4x faster too (benchmarks/training_speed.py reports which is in use), so
# ferlib asks for them everywhere before TensorFlow loads; TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
