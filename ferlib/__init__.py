"""ferlib: facial emotion recognition on FER-2013 — data, training runs, evaluation, detection, live pipeline.

Plain Python (TensorFlow/Keras, OpenCV, NumPy); it never imports Streamlit. Heavy modules are imported where
used, so `import ferlib` and the CLI's help stay fast.
"""

__version__ = "0.1.0"
