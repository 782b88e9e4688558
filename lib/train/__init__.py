"""Generic trainer for every model family (``python -m lib.train PARAMS.yaml``).

API::

    from lib.train import load_config, load_trained_model, train   # the stage's face (lib.families underneath)
    cfg = load_config("params/motion_SE_3CLS_nonlpaug_288_cpu.yaml")
    metrics = train(cfg, data_root, prep_dir, out_dir, max_steps=None, workers=None, device=None)
    model = load_trained_model(cfg, "OUT/best.safetensors")        # eval mode, on the default device

Outputs in ``out_dir``: ``best.safetensors`` (best val MRR), ``last.safetensors``, ``state.pt`` (resume state,
``weights_only``-loadable), ``metrics.json``, ``history.json``, ``curves.png``, ``run_info.json``. See
:mod:`lib.train.loop` for the loop, :mod:`lib.train.sampler` for the data order, :mod:`lib.train.checkpoint` for
the files, :mod:`lib.distributed` for DDP and :mod:`lib.families.base` for what a family provides.
"""

from lib.families import BaseTrainCfg, load_config, load_trained_model
from lib.families.dual_stream.authors import load_authors_checkpoint
from lib.train.loop import train

__all__ = ["BaseTrainCfg", "load_authors_checkpoint", "load_config", "load_trained_model", "train"]
