"""Part Two, family ``instance``: ``config`` (sections), ``model``, ``gem`` (pooling), ``data`` (text rules, frame
sampling, transforms, the training dataset), ``loss``, ``family`` (the registered object) and ``authors`` (import of
the authors' released ``net_last.pth``)."""

from lib.families.instance.family import FAMILY

__all__ = ["FAMILY"]
