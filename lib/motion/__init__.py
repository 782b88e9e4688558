"""Stage 02 (notebook ``02_motion_maps``): camera backgrounds and per-track motion maps (``maps``, the published
rule and its options), the literal per-track rule of the original scripts used as a test and benchmark baseline
(``reference``), and the notebook's figures (``figures``). ``python -m lib.motion DATA_ROOT OUT_DIR`` is the command
line."""

from lib.motion.maps import build_motion_maps, main, motion_dir, motion_map_path

__all__ = ["build_motion_maps", "main", "motion_dir", "motion_map_path"]
