"""Generic trainer for every model family (``python -m lib.train PARAMS.yaml``).

API::

    from lib.train import train, load_trained_model
    metrics = train(cfg, data_root, prep_dir, out_dir, max_steps=None, workers=None, device=None)
    model = load_trained_model(cfg, "OUT/best.safetensors")        # eval mode, on the default device

Outputs in ``out_dir``: ``best.safetensors`` (best val MRR), ``last.safetensors``, ``state.pt`` (resume state,
``weights_only``-loadable), ``metrics.json``, ``history.json``, ``curves.png``, ``run_info.json``. See
:mod:`lib.train.loop` for the loop, :mod:`lib.train.sampler` for the data order, :mod:`lib.train.checkpoint` for
the files, :mod:`lib.train.distributed` for DDP and :mod:`lib.family` for what a family provides.
"""

from lib.train.checkpoint import load_trained_model
from lib.train.config import BaseTrainCfg
from lib.train.loop import load_split, train

__all__ = ["train", "load_trained_model", "load_split", "BaseTrainCfg"]
