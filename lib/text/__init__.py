"""Text preprocessing: the subject-prefix augmentation of the paper (:mod:`lib.text.augment`), training-time
augmentation and the left/right flip (:mod:`lib.text.train_aug`), the original train/val split
(:mod:`lib.text.split`) and an attribute parser (:mod:`lib.text.attributes`).

Importing this package is light; spaCy and nlpaug are loaded only by the functions that need them.
CLI: ``python -m lib.text {augment,prepare,split,agreement} ...``.
"""
