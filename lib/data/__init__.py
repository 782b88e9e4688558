"""Training data: image loading (:mod:`lib.data.images`), the Part One dataset (:mod:`lib.data.part_one`) and the
per-track crop / motion-map caches (:mod:`lib.data.crop_cache`)."""
