"""Interactive search: type a sentence, get the ensemble's top tracks, see them as thumbnail strips.

``SearchIndex`` holds, per configuration, a text encoder (``sentences -> [S, D]``), its gallery features, its scoring
rule and weight (the same rules and published weights as ``lib.ensemble.scores``). ``search(sentence, index, k)`` ranks
every gallery track for one description (one sentence or several); ``show_results`` draws thumbnail strips with
matplotlib, and ``interactive_search`` wraps both in an ipywidgets text box when ipywidgets is available (in a
headless papermill run, call ``search`` + ``show_results`` directly).

``SearchIndex.from_runs(runs_dir, configs)`` rebuilds each trained model from what ``lib.embed`` recorded in the
embedding folder (configuration file, overrides and checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.cityflow import Layout
from lib.embeddings import Gallery, Queries, gallery_vectors, load_gallery_embeddings, query_vectors, read_manifest

Encoder = Callable[[list[str]], np.ndarray]


@dataclasses.dataclass
class SearchMember:
    name: str
    rule: str
    weight: float
    encode: Encoder  # sentences -> [S, D] (each sentence L2-normalised)
    gallery: Gallery


@dataclasses.dataclass
class Hit:
    rank: int
    track_id: str
    score: float


class SearchIndex:
    """Precomputed gallery vectors of every member, aligned to one track order."""

    def __init__(self, members: Sequence[SearchMember]) -> None:
        if not members:
            raise ValueError("a search index needs at least one configuration")
        self.members = list(members)
        self.track_ids = list(members[0].gallery.ids)
        self._gallery = []
        for m in self.members:
            pos = {t: i for i, t in enumerate(m.gallery.ids)}
            if set(pos) != set(self.track_ids):
                raise ValueError(f"{m.name}: gallery tracks differ from {members[0].name}'s")
            g = gallery_vectors(m.gallery, m.rule)
            self._gallery.append(g[[pos[t] for t in self.track_ids]])

    def scores(self, sentences: Sequence[str]) -> np.ndarray:
        """[N] ensemble scores of every track for one description."""
        total = np.zeros(len(self.track_ids), dtype=np.float32)
        for m, g in zip(self.members, self._gallery):
            feats = np.asarray(m.encode(list(sentences)), dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != len(sentences):
                raise ValueError(f"{m.name}: encoder returned {feats.shape} for {len(sentences)} sentence(s)")
            q = query_vectors(Queries(["query"], feats[None], np.array([len(sentences)])), m.rule)
            total += m.weight * (q @ g.T)[0]
        return total

    @classmethod
    def from_runs(cls, runs_dir: str | os.PathLike[str], configs: Sequence[str],
                  device: str | None = None) -> SearchIndex:
        """Load each configuration's trained model and test gallery from ``runs_dir/embed/<config>``."""
        from lib.families import load_config, load_trained_model
        from lib.families.base import get_family

        members = []
        for name in configs:
            d = Path(runs_dir) / "embed" / name
            man = read_manifest(d)
            if man.get("ablation"):
                continue
            for key in ("config_path", "checkpoint"):
                if key not in man:
                    raise KeyError(f"{d / 'embedding.json'}: no {key!r}: these embeddings were not made by "
                                   "lib.embed, so there is no model to encode a new sentence")
            cfg = load_config(man["config_path"], man.get("overrides") or None)
            model = load_trained_model(cfg, man["checkpoint"], device=device,
                                       allow_config_mismatch="config_mismatch" in man)
            fam = get_family(cfg.family)

            def encode(sentences: list[str], fam: Any = fam, model: Any = model, cfg: Any = cfg) -> np.ndarray:
                return fam.embed_queries(model, cfg, [sentences])[0]

            members.append(SearchMember(name, man["rule"], float(man["weight"]), encode,
                                        load_gallery_embeddings(d / "gallery.npz")))
        return cls(members)


def search(sentence: str | Sequence[str], index: SearchIndex, k: int = 10) -> list[Hit]:
    """The ``k`` best tracks for a description (one sentence or a list of sentences), best first."""
    sentences = [sentence] if isinstance(sentence, str) else list(sentence)
    if not sentences or not all(s.strip() for s in sentences):
        raise ValueError("type a non-empty description")
    s = index.scores(sentences)
    order = np.argsort(-s, kind="stable")[:k]
    return [Hit(i + 1, index.track_ids[j], float(s[j])) for i, j in enumerate(order)]


def test_gallery(data_root: str | os.PathLike[str]) -> tuple[Layout, dict[str, dict[str, Any]]]:
    """The layout of ``data_root`` and its test tracks (what :func:`show_results` draws from)."""
    from lib.cityflow import load_tracks

    layout = Layout.of(data_root)
    return layout, load_tracks(layout.test_tracks)


SCORE_NOTE = "score = the ensemble's weighted sum of its members' similarities (higher ranks first)"


def show_results(hits: Sequence[Hit], layout: Layout, tracks: Mapping[str, dict[str, Any]], n_frames: int = 3,
                 title: str = "", mark: str | None = None) -> Any:
    """A matplotlib figure: one row per hit, labelled with its rank, track and score; ``n_frames`` crops along the
    track (first, middle, last for 3) and the track's path on its last frame; ``mark`` framed green."""
    import textwrap

    import matplotlib.pyplot as plt

    from lib.thumbnails import framed, track_path, track_strip

    cols = n_frames + 1
    fig, axes = plt.subplots(len(hits), cols, figsize=(1.9 * cols, 1.95 * len(hits) + 0.8), squeeze=False)
    along = "first, middle and last frame" if n_frames == 3 else f"{n_frames} frames along the track"
    for r, hit in enumerate(hits):
        track = tracks[hit.track_id]
        strip = track_strip(layout, hit.track_id, track, n=n_frames)
        path = track_path(layout, hit.track_id, track)
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            img = path if c == cols - 1 else (strip[c] if c < len(strip) else None)
            if img is not None:
                ax.imshow(framed(img, (0, 200, 0)) if hit.track_id == mark else img)
        axes[r, 0].set_title(f"#{hit.rank}  track {hit.track_id[:8]}  score {hit.score:.3f}", fontsize=9,
                             loc="left", fontweight="bold")
    head = "\n".join(textwrap.wrap(f'"{title}"', 56)) + "\n" if title else ""
    fig.suptitle(f"{head}each row: {along}, then the path (dot = start, arrow = end)\n{SCORE_NOTE}", fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes (displayed the same way under any matplotlib backend)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def interactive_search(index: SearchIndex, layout: Layout, tracks: Mapping[str, dict[str, Any]], k: int = 5,
                       initial: str = "") -> Any:
    """An ipywidgets search box (JupyterLab) that shows each description's top ``k`` tracks (:func:`show_results`)
    below it; returns the widget, or ``None`` in a headless run (``lib.progress.headless``: nobody can type, and a
    saved notebook keeps no widget state) or when ipywidgets is not installed."""
    from lib.progress import headless

    if headless():
        return None
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    box = widgets.Text(value=initial, placeholder="e.g. a red pickup truck turns left at the intersection",
                       description="Search:", continuous_update=False, layout=widgets.Layout(width="80%"))
    out = widgets.Output()

    def run(_: Any = None) -> None:
        out.clear_output(wait=True)
        with out:
            if not box.value.strip():
                return
            fig = show_results(search(box.value, index, k), layout, tracks, title=box.value)
            png = figure_png(fig)
            plt.close(fig)  # drawn once, as an image in the box's output (not again by the inline backend)
            display(Image(data=png))

    box.observe(run, names="value")  # fires on Enter / focus loss (continuous_update=False)
    if initial:
        run()
    return widgets.VBox([box, out])
