"""Part One, family ``dual_stream``: ``config`` (sections), ``model``, ``data`` (training samples), ``cache`` (crop,
motion-map and text-feature caches), ``loss``, ``schedule``, ``family`` (the registered object) and ``authors``
(import of the authors' released checkpoints)."""

from lib.families.dual_stream.family import FAMILY

__all__ = ["FAMILY"]
