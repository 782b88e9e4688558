"""CityFlow-NL natural-language vehicle retrieval: the 2021 1st-place system, reproduced and extended.

Every notebook in ``notebooks/`` is a thin call sequence into this package; every command-line entry point
(``python -m lib.<module>``) is a thin layer over the same functions.
"""

import os

# Offline first: no code path may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__all__ = ["__version__"]
__version__ = "0.1.0"
