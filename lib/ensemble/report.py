"""The reproduction's report: ``REPORT_DIR/summary.json``, ``summary.md`` and figures (called by 06_ensemble).

Contents:

- one table of every configuration (val MRR of its training run when known, test MRR / R@1 / R@5 / R@10), the
  ablations (e.g. crop-only), the ensemble variants (published / equal / fitted weights, each with and without the
  attribute re-rank) and a random ranking;
- the published and fitted weights;
- MRR per query kind. The attribute parser reads each query's colour, type and manoeuvre (so kinds exist on real
  data too); a query is ``colour``-, ``type``- or ``manoeuvre``-heavy after its most unusual cue: the stated value
  that is rarest relative to the other values of its attribute (frequency among the split's queries times the
  attribute's number of distinct values). ``a maroon sedan goes straight`` -> colour-heavy; ``a white SUV turns
  left`` -> manoeuvre-heavy; ``a white bus goes straight`` -> type-heavy; ``other`` states none;
- the re-rank's classifier accuracy (against the synthetic truth when it exists);
- a rank histogram (``rank_histogram.png``) and a retrieval gallery (``retrieval_gallery.png``: a few queries'
  sentences, their top-5 tracks as a crop above the track's path with rank and score, the true track framed in
  green, or appended when outside the top 5);
- 95 % bootstrap intervals over queries on every row (:mod:`lib.ensemble.stats`), the oracle rows (the ceiling:
  ranking by the true colour, type and manoeuvre, :mod:`lib.ensemble.oracle`) and paired bootstrap tests: every
  ensemble variant vs the best single model, and the ablations that differ in one published choice (motion stream vs
  crop-only on manoeuvre queries, nlpaug vs plain, ID losses vs none);
- where the models fail (:mod:`lib.ensemble.failures`): the attribute read-out's confusions (type x type, manoeuvre x
  manoeuvre, the colour pairs mixed up) and the ten worst queries with their top 5 (``worst_queries.png``);
- the git commit and time.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lib.cityflow import Layout, load_queries, load_tracks
from lib.ensemble.failures import confusion_figure, near_pairs, worst_queries
from lib.ensemble.oracle import oracle_values
from lib.ensemble.rerank import AttributeLabels, parse_all
from lib.ensemble.run import EnsembleResult, metrics_record
from lib.ensemble.stats import bootstrap_interval, intervals, paired_mrr
from lib.io import git_commit, read_json, save_figure, write_json, write_text

KINDS = ("manoeuvre", "type", "colour", "other")
TABLE_METRICS = ("mrr", "recall_1", "recall_5", "recall_10")
VARIANT_LABELS = {"published": "ensemble, published weights", "equal": "ensemble, equal weights",
                  "fitted": "ensemble, weights fitted on val"}


def query_kinds(parsed: Sequence[AttributeLabels]) -> list[str]:
    """The kind of each query: its most unusual stated attribute (see the module docstring).

    For every stated value, ``frequency among the split's queries x number of distinct values of that attribute``
    says how much more (> 1) or less (< 1) common the value is than an average value of its attribute; the query's
    kind is the attribute whose value scores lowest. Ties go to the manoeuvre, then the type; nothing stated ->
    ``other``.
    """
    values = {"colour": [q.colours[0] if q.colours else None for q in parsed],
              "type": [q.vtype for q in parsed], "manoeuvre": [q.manoeuvre for q in parsed]}
    freq = {a: Counter(v for v in vals if v is not None) for a, vals in values.items()}
    kinds = []
    for i in range(len(parsed)):
        stated = [(freq[a][values[a][i]] * len(freq[a]) / sum(freq[a].values()), rank, a)
                  for rank, a in enumerate(("manoeuvre", "type", "colour")) if values[a][i] is not None]
        kinds.append(min(stated)[2] if stated else "other")
    return kinds


def variant_label(v: str) -> str:
    base, _, rr = v.partition("+")
    return VARIANT_LABELS.get(base, base) + (" + attribute re-rank" if rr else "")


def _row(name: str, kind: str, test: Mapping[str, float] | None, ranks: np.ndarray | None = None, seed: int = 0,
         **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "kind": kind, **extra}
    for k in TABLE_METRICS:
        row[k] = None if test is None else float(test[k])
    if ranks is not None:
        row["ci95"] = {m: list(v) for m, v in intervals(ranks, seed).items()}
    return row


def table_rows(result: EnsembleResult, train_metrics: Mapping[str, Mapping[str, Any]] | None = None
               ) -> list[dict[str, Any]]:
    train_metrics = train_metrics or {}
    rows = []
    for name, split in result.config_metrics.items():
        kind = "ablation" if name in result.ablations else "configuration"
        weight = None
        if name in result.members:
            weight = result.weights["published"][result.members.index(name)]
        rows.append(_row(name, kind, split.get("test"), result.test_ranks.get(name), weight=weight,
                         val_mrr=split.get("val", {}).get("mrr"),
                         train_val_mrr=train_metrics.get(name, {}).get("val_mrr"),
                         train_time_s=train_metrics.get(name, {}).get("train_time_s")))
    for v, split in result.variant_metrics.items():
        rows.append(_row(variant_label(v), "ensemble", split.get("test"), result.test_ranks.get(v), variant=v,
                         val_mrr=split.get("val", {}).get("mrr")))
    rows.append(_row("random ranking", "random", result.random if result.test.target_index is not None else None,
                     val_mrr=None))
    return rows


def oracle_rows(result: EnsembleResult, data_root: str | os.PathLike[str] | None, seed: int = 0
                ) -> list[dict[str, Any]]:
    """The oracle rows (:mod:`lib.ensemble.oracle`) with their intervals; none without synthetic truth."""
    if data_root is None or result.test.target_index is None:
        return []
    values = oracle_values(data_root, result.test.query_ids, result.test.gallery_ids, result.test.target_index)
    rows = []
    for name, per in (values or {}).items():
        row: dict[str, Any] = {"name": name, "kind": "oracle", "val_mrr": None}
        row.update({m: float(per[m].mean()) for m in TABLE_METRICS})
        row["ci95"] = {m: list(bootstrap_interval(per[m], seed)) for m in TABLE_METRICS}
        rows.append(row)
    return rows


# (label, configuration a, configuration b, query kind or None): pairs that differ in one published choice only.
ABLATIONS = (
    ("motion stream vs crop-only, on manoeuvre queries", "motion_effb3_NOCLS_nlpaug_320",
     "croponly_effb3_NOCLS_nlpaug_320", "manoeuvre"),
    ("motion stream vs crop-only, all queries", "motion_effb3_NOCLS_nlpaug_320", "croponly_effb3_NOCLS_nlpaug_320",
     None),
    ("nlpaug vs plain sentences", "motion_SE_NOCLS_nlpaug_288", "motion_SE_NOCLS_nonlpaug_288", None),
    ("ID losses (3CLS) vs none", "motion_SE_3CLS_nonlpaug_288", "motion_SE_NOCLS_nonlpaug_288", None),
)


def _find(names: Sequence[str], base: str) -> str | None:
    """The configuration named ``base`` or one of its variants (``base_cpu``)."""
    for n in names:
        if n == base or n.removesuffix("_cpu") == base:
            return n
    return None


def paired_tests(result: EnsembleResult, kinds: Sequence[str] | None, seed: int = 0) -> list[dict[str, Any]]:
    """Every ensemble variant vs the best single model, and each ablation of :data:`ABLATIONS` present."""
    if result.test.target_index is None:
        return []
    ranks = result.test_ranks
    singles = {n: result.config_metrics[n]["test"]["mrr"] for n in result.members}
    best = max(singles, key=singles.get)
    out = []
    for v in result.variant_metrics:
        t = paired_mrr(ranks, v, best, seed=seed).to_dict()
        out.append({"label": f"{variant_label(v)} vs best single model", **t})
    names = list(result.config_metrics)
    k = np.asarray(kinds) if kinds is not None else None
    for label, a, b, kind in ABLATIONS:
        na, nb = _find(names, a), _find(names, b)
        if na is None or nb is None or (kind is not None and k is None):
            continue
        mask = None if kind is None else (k == kind)
        t = paired_mrr(ranks, na, nb, mask, subset=f"{kind} queries" if kind else "all queries", seed=seed)
        out.append({"label": label, **t.to_dict()})
    return out


def kind_breakdown(result: EnsembleResult, kinds: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """MRR per query kind for each configuration / variant in ``names`` (test ranks)."""
    k = np.asarray(kinds)
    out: dict[str, Any] = {"counts": {kind: int((k == kind).sum()) for kind in KINDS}, "mrr": {}}
    for name in names:
        if name not in result.test_ranks:
            continue
        r = result.test_ranks[name]
        out["mrr"][name] = {kind: (float(np.mean(1.0 / (r[k == kind] + 1))) if (k == kind).any() else None)
                            for kind in KINDS}
    return out


def checks(result: EnsembleResult) -> dict[str, Any]:
    """The goals: the ensemble beats every single model; every model is far above random."""
    if result.test.target_index is None:
        return {}
    singles = {n: result.config_metrics[n]["test"]["mrr"] for n in result.members}
    ens = result.variant_metrics["published"]["test"]["mrr"]
    chance = result.random["expected_mrr"]
    best = max(singles, key=singles.get)
    test = paired_mrr(result.test_ranks, "published", best)
    return {"published_ensemble_mrr": ens, "best_single": best,
            "best_single_mrr": max(singles.values()),
            "ensemble_beats_every_single_model": bool(ens > max(singles.values())),
            "ensemble_vs_best_p": test.p_a_better, "ensemble_vs_best_diff_ci95": list(test.diff_ci),
            "ensemble_significantly_better": test.significant,
            "random_mrr": chance, "weakest_model_over_random": min(singles.values()) / chance}


# --- figures ---------------------------------------------------------------------------------------------------
RANK_BINS = ((0, 1, "1"), (1, 5, "2-5"), (5, 10, "6-10"), (10, 25, "11-25"), (25, 50, "26-50"),
             (50, 100, "51-100"), (100, 10**9, ">100"))


def rank_histogram(result: EnsembleResult, names: Sequence[str], path: str | os.PathLike[str]) -> Path:
    from matplotlib.figure import Figure  # no pyplot: the report never touches the notebook's backend

    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    x = np.arange(len(RANK_BINS))
    for i, name in enumerate(names):
        r = result.test_ranks[name]
        share = [float(np.mean((r >= lo) & (r < hi))) for lo, hi, _ in RANK_BINS]
        ax.bar(x + i * width - 0.4 + width / 2, share, width, label=variant_label(name)
               if name in result.variant_metrics else name)
    ax.set_xticks(x, [b[2] for b in RANK_BINS])
    ax.set_xlabel("rank of the true track (1 = first)")
    ax.set_ylabel("share of test queries")
    ax.legend(fontsize=8)
    ax.set_title(f"Where the true track lands ({len(result.test.query_ids)} queries, "
                 f"{len(result.test.gallery_ids)} tracks)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def pick_examples(ranks: np.ndarray, n: int = 3, seed: int = 0) -> list[int]:
    """Query indices for the retrieval gallery: a hit, a middling one, a miss (when they exist); deterministic."""
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    for lo, hi in ((0, 1), (1, 10), (10, 10**9), (0, 10**9)):
        cand = [i for i in np.flatnonzero((ranks >= lo) & (ranks < hi)) if i not in picks]
        if cand and len(picks) < n:
            picks.append(int(rng.choice(cand)))
    return picks


def retrieval_gallery(result: EnsembleResult, variant: str, layout: Layout, path: str | os.PathLike[str],
                      queries: Mapping[str, Sequence[str]], tracks: Mapping[str, dict[str, Any]], n: int = 3,
                      k: int = 5, seed: int = 0, picks: Sequence[int] | None = None, title: str | None = None
                      ) -> Path:
    """A few queries (a hit, a middling one, a miss): their sentences, then their top ``k`` tracks, each as its
    middle crop above its path (``lib.thumbnails.track_path``), titled with rank and score; the true track framed
    green, appended after the top ``k`` when it is not among them. Sized to be read at notebook width. ``picks``
    (query indices) replaces the hit / middling / miss choice (the report's worst queries)."""
    from matplotlib.figure import Figure

    from lib.metrics import rank_order
    from lib.thumbnails import framed, track_path, track_thumbnail

    ranks = result.test_ranks[variant]
    scores = result.variant_scores[variant]
    order = rank_order(scores)
    picks = list(picks) if picks is not None else pick_examples(ranks, n, seed)
    assert result.test.target_index is not None
    fig = Figure(figsize=(2.9 + 1.45 * (k + 1), 3.3 * len(picks) + 0.6))
    axes = fig.subplots(len(picks), k + 2, squeeze=False, gridspec_kw={"width_ratios": [2.0] + [1] * (k + 1)})
    for row, qi in enumerate(picks):
        qid = result.test.query_ids[qi]
        target = int(result.test.target_index[qi])
        text = "\n".join(textwrap.fill(f"{j + 1}. {s}", 30, subsequent_indent="   ")
                         for j, s in enumerate(queries[qid]))
        axes[row, 0].text(0, 0.5, text, fontsize=9, va="center", ha="left")
        axes[row, 0].set_title(f"query {qid[:8]}: true track at rank {int(ranks[qi]) + 1}", fontsize=9, loc="left")
        shown = [int(g) for g in order[qi, :k]]
        extra = [] if target in shown else [target]
        for col, g in enumerate(shown + extra, start=1):
            tid = result.test.gallery_ids[g]
            img = np.concatenate([track_thumbnail(layout, tid, tracks[tid], size=128),
                                  track_path(layout, tid, tracks[tid], size=128)], axis=0)
            if g == target:
                img = framed(img, (0, 200, 0))
            axes[row, col].imshow(img)
            rank = col if col <= k else int(ranks[qi]) + 1
            axes[row, col].set_title(f"{'true ' if g == target else ''}#{rank}\n{float(scores[qi, g]):.3f}",
                                     fontsize=9, color="green" if g == target else "black")
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title or (f"Top {k} tracks of {variant_label(variant)}: each the middle crop above its path (dot = "
                 "start, arrow = end),\ntitled with rank and score (the variant's fused score); the true track framed "
                 "green"), fontsize=10)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))  # room for the two-line title above the first row
    return save_figure(fig, path, dpi=100)


# --- markdown --------------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(r: Mapping[str, Any], m: str) -> str:
    v, ci = r.get(m), (r.get("ci95") or {}).get(m)
    if v is None:
        return "–"
    return f"{v:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.4f}"


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = [f"# Results: {summary.get('title', 'CityFlow-NL retrieval')}", "",
             f"Commit `{summary['git_commit']}`, {summary['time']}. Test split: {summary['n_queries']} queries x "
             f"{summary['n_tracks']} tracks; val split: {summary['n_val_queries']} queries. Submitted: "
             f"`{summary['submitted_variant']}` -> `{summary['submission']}`.", "",
             "## Every configuration, the ensemble variants, chance and the ceiling", "",
             "Test metrics with a 95 % bootstrap interval over the test queries (percentile, 2,000 resamples): two "
             "rows whose intervals overlap may still differ (see the paired tests below), but a difference inside "
             "one interval's width is not something this split can show.", "",
             "| model | kind | weight | val MRR (training) | val MRR | test MRR [95 % CI] | R@1 | R@5 | R@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in [*summary["table"], *summary.get("oracles", [])]:
        lines.append(f"| {r['name']} | {r['kind']} | {_fmt(r.get('weight'), 2)} | {_fmt(r.get('train_val_mrr'))} | "
                     f"{_fmt(r.get('val_mrr'))} | {_ci(r, 'mrr')} | {_ci(r, 'recall_1')} | "
                     f"{_ci(r, 'recall_5')} | {_ci(r, 'recall_10')} |")
    if summary.get("oracles"):
        lines += ["", "The oracle rows rank by the generator's truth about the described vehicle: every track with the "
                      "target's colour, type (and manoeuvre) ties first, in random order (expected values, "
                      "lib/ensemble/oracle.py). They are the ceiling of a model that reads exactly those cues."]
    c = summary.get("checks") or {}
    if c:
        lines += ["", f"Published ensemble MRR {c['published_ensemble_mrr']:.4f} vs best single model "
                      f"({c['best_single']}) {c['best_single_mrr']:.4f}: the ensemble "
                      f"{'beats' if c['ensemble_beats_every_single_model'] else 'does NOT beat'} every single model"
                      + (f" (paired bootstrap: difference {c['published_ensemble_mrr'] - c['best_single_mrr']:+.4f}, "
                         f"95 % CI [{c['ensemble_vs_best_diff_ci95'][0]:+.3f}, "
                         f"{c['ensemble_vs_best_diff_ci95'][1]:+.3f}], p = {_p(c['ensemble_vs_best_p'])}: "
                         f"{'significant' if c['ensemble_significantly_better'] else 'NOT significant'} at 0.05)"
                         if "ensemble_vs_best_p" in c else "")
                      + f". Weakest model: {c['weakest_model_over_random']:.1f}x the random MRR "
                      f"({c['random_mrr']:.4f})."]
    tests = summary.get("paired_tests") or []
    if tests:
        lines += ["", "## Paired tests", "",
                  "Paired bootstrap over the same queries (10,000 resamples): the mean difference in reciprocal rank "
                  "(A - B), its 95 % interval and the one-sided p-value of \"A is better than B\".", "",
                  "| comparison | A | B | queries | MRR A | MRR B | A - B [95 % CI] | p (A > B) |",
                  "|---|---|---|---|---|---|---|---|"]
        for t in tests:
            a = variant_label(t["a"]) if t["a"] in summary["variants"] else t["a"]
            lines.append(f"| {t['label']} | {a} | {t['b']} | {t['n']} ({t['subset']}) | {t['mean_a']:.4f} | "
                         f"{t['mean_b']:.4f} | {t['diff']:+.4f} [{t['diff_ci'][0]:+.3f}, {t['diff_ci'][1]:+.3f}] | "
                         f"{_p(t['p_a_better'])}{' *' if t['significant'] else ''} |")
        lines += ["", "\\* p < 0.05."]
    w = summary["weights"]
    lines += ["", "## Ensemble weights", "", "| configuration | " + " | ".join(w["variants"]) + " |",
              "|---|" + "---|" * len(w["variants"])]
    for i, m in enumerate(w["members"]):
        lines.append(f"| {m} | " + " | ".join(_fmt(w["values"][v][i], 4) for v in w["variants"]) + " |")
    if "fitted" in w["variants"]:
        lines += ["", "Fitted weights maximise MRR on the val split (coordinate ascent from the published weights); "
                      "their val MRR is in-sample, the test MRR is the honest number. A weight of 0 means that member "
                      "did not raise the val MRR of the others at any grid step (with 100 val queries the search "
                      "often puts all weight on one or two members): read it as 'not needed on val', not as "
                      "'useless'."]
    kb = summary.get("query_kinds")
    if kb and kb["mrr"]:
        lines += ["", "## MRR per query kind", "",
                  "A query's kind is its most unusual cue: of the colour, type and manoeuvre the parser reads in its "
                  "sentences, the value that is rarest relative to its attribute's other values among the test "
                  "queries (frequency x number of values; ties: manoeuvre, then type).",
                  "", "| model | " + " | ".join(f"{k} (n={kb['counts'][k]})" for k in KINDS) + " |",
                  "|---|" + "---|" * len(KINDS)]
        for name, per in kb["mrr"].items():
            label = variant_label(name) if name in summary["variants"] else name
            lines.append(f"| {label} | " + " | ".join(_fmt(per[k]) for k in KINDS) + " |")
    rr = summary.get("rerank") or {}
    if rr.get("enabled"):
        s = rr["settings"]
        lines += ["", "## Attribute re-rank", "",
                  f"Classifiers (logistic regression, C={s['c']}) on {rr['n_train_tracks']} training tracks' "
                  f"embeddings, labels from the parser on their descriptions; match threshold {s['min_prob']}, "
                  f"top-k {s['top_k'] or 'all'}."]
        acc = rr.get("synthetic_accuracy_test") or {}
        if acc:
            lines.append("Predicted test-track attributes vs the synthetic truth: "
                         + ", ".join(f"{k} {v:.1%}" for k, v in acc.items()) + " (chance is about 1/7 for the "
                         "vehicle type and 1/5 for the manoeuvre: an accuracy near those says the embeddings carry "
                         "little of that attribute, and the re-rank can only help on the attributes they do carry).")
        st = rr.get("queries_stating") or {}
        if st:
            lines.append("Test queries stating each attribute: " + ", ".join(f"{k} {v:.0%}" for k, v in st.items())
                         + ".")
    fail = summary.get("failures") or {}
    if fail:
        lines += ["", "## Where the models fail", ""]
        conf = fail.get("confusions") or {}
        if conf:
            lines.append("The attribute read-out (the re-rank's classifiers on the test tracks' embeddings) against "
                         "the generator's truth; rows: true value, columns: read value "
                         "(figure: attribute_confusions.png).")
            for attr in ("type", "manoeuvre"):
                if attr not in conf:
                    continue
                labels, counts = conf[attr]["labels"], conf[attr]["counts"]
                lines += ["", f"**{attr}** (true \\ read)", "", "| | " + " | ".join(labels) + " |",
                          "|---|" + "---|" * len(labels)]
                lines += [f"| {t} | " + " | ".join(str(c) for c in row) + " |" for t, row in zip(labels, counts)]
            if fail.get("colour_pairs"):
                lines += ["", "**colour**, the most frequent confusions: " + "; ".join(
                    f"{p['true']} read as {p['predicted']} {p['count']}x ({p['share_of_true']:.0%} of {p['true']})"
                    for p in fail["colour_pairs"]) + "."]
        worst = fail.get("worst") or []
        if worst:
            lines += ["", f"The {len(worst)} worst test queries of `{summary['submitted_variant']}` (true track's "
                          "rank); truth = the generator's colour / type / manoeuvre of the true track and of the track "
                          "ranked first (figure: worst_queries.png, their top 5).", "",
                      "| query | rank | first sentence | true track | ranked first |", "|---|---|---|---|---|"]
            lines += [f"| {w['query'][:8]} | {w['rank']} | {w['sentence']} | {w.get('target_truth', '–')} | "
                      f"{w.get('top1_truth', '–')} |" for w in worst]
    figs = summary.get("figures") or {}
    if figs:
        lines += ["", "## Figures", ""]
        for title, rel in figs.items():
            lines.append(f"![{title}]({rel})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def failures(result: EnsembleResult, layout: Layout, n_worst: int = 10) -> dict[str, Any]:
    """The read-out confusions (from the re-rank, when it ran on synthetic data) and the worst queries of the
    submitted variant, with the generator's truth of their true and first-ranked tracks when it exists."""
    out: dict[str, Any] = {}
    conf = (result.rerank or {}).get("confusions_test") or {}
    if conf:
        out["confusions"] = conf
        if "colour" in conf:
            out["colour_pairs"] = near_pairs(conf["colour"], 5)
    from lib.metrics import rank_order

    variant = result.submitted_variant
    ranks = result.test_ranks[variant]
    order = rank_order(result.variant_scores[variant])
    queries = load_queries(layout.test_queries)
    labels_path = layout.root / "synthetic-labels.json"
    truth = read_json(labels_path) if labels_path.exists() else {}

    def describe(tid: str) -> str | None:
        t = truth.get(tid)
        return None if t is None else f"{t.get('colour')} {t.get('type')}, {t.get('manoeuvre')}"

    assert result.test.target_index is not None
    worst = []
    for qi in worst_queries(ranks, n_worst):
        qid = result.test.query_ids[qi]
        target = result.test.gallery_ids[int(result.test.target_index[qi])]
        top1 = result.test.gallery_ids[int(order[qi, 0])]
        sent = queries[qid][0] if queries.get(qid) else ""
        row: dict[str, Any] = {"index": qi, "query": qid, "rank": int(ranks[qi]) + 1,
                               "sentence": textwrap.shorten(sent, 90), "target": target, "top1": top1}
        if truth:
            row.update(target_truth=describe(target), top1_truth=describe(top1))
        worst.append(row)
    out["worst"] = worst
    return out


def read_train_metrics(runs_dir: str | os.PathLike[str] | None, folders: Mapping[str, str]
                       ) -> dict[str, dict[str, Any]]:
    """``{configuration: RUNS/train/<folder>/metrics.json}`` for those that exist (folder = the run's name, which
    the pipeline also gives the embedding folder)."""
    out: dict[str, dict[str, Any]] = {}
    if runs_dir is None:
        return out
    for name, folder in folders.items():
        p = Path(runs_dir) / "train" / folder / "metrics.json"
        if p.exists():
            out[name] = read_json(p)
    return out


def build_report(result: EnsembleResult, report_dir: str | os.PathLike[str],
                 data_root: str | os.PathLike[str] | None = None, runs_dir: str | os.PathLike[str] | None = None,
                 title: str = "", parser: Callable[[Sequence[str]], AttributeLabels] | None = None,
                 figures: bool = True, seed: int = 0) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.md`` and the figures into ``report_dir``; return the summary dict."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(result.config_metrics)
    train_metrics = read_train_metrics(runs_dir, {n: Path(result.sources.get(n, n)).name for n in names})
    rec = metrics_record(result)
    summary: dict[str, Any] = {
        "title": title or "CityFlow-NL retrieval", "git_commit": git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "n_queries": rec["n_queries"], "n_tracks": rec["n_tracks"],
        "n_val_queries": rec["n_val_queries"], "submitted_variant": result.submitted_variant,
        "submission": str(result.submission_path), "table": table_rows(result, train_metrics),
        "variants": list(result.variant_metrics),
        "weights": {"members": result.members, "variants": list(result.weights),
                    "values": result.weights},
        "rerank": result.rerank, "train": train_metrics, "configs": result.config_metrics,
        "ensemble": result.variant_metrics, "random": result.random, "figures": {},
    }
    summary["oracles"] = oracle_rows(result, data_root, seed)
    layout = Layout.of(data_root) if data_root is not None else None
    kinds = None
    if layout is not None and layout.test_queries.exists() and result.test.target_index is not None:
        queries = load_queries(layout.test_queries)
        kinds = query_kinds(parse_all([queries[q] for q in result.test.query_ids], parser))
        summary["query_kinds"] = kind_breakdown(result, kinds, [*names, *result.variant_metrics])
    summary["paired_tests"] = paired_tests(result, kinds, seed)
    summary["checks"] = checks(result)
    if layout is not None and layout.test_queries.exists() and result.test.target_index is not None:
        summary["failures"] = failures(result, layout)
        if figures:
            hist_names = [*(["published"] if "published" in result.test_ranks else []),
                          *(v for v in ("fitted+rerank",) if v in result.test_ranks)]
            best = summary["checks"].get("best_single")
            if best:
                hist_names.insert(0, best)
            rank_histogram(result, hist_names, out / "rank_histogram.png")
            summary["figures"]["rank histogram"] = "rank_histogram.png"
            tracks = load_tracks(layout.test_tracks)
            retrieval_gallery(result, result.submitted_variant, layout, out / "retrieval_gallery.png", queries,
                              tracks, seed=seed)
            summary["figures"]["retrieval gallery"] = "retrieval_gallery.png"
            conf = summary["failures"].get("confusions")
            if conf:
                confusion_figure(conf, out / "attribute_confusions.png")
                summary["figures"]["attribute read-out confusions"] = "attribute_confusions.png"
            picks = [w["index"] for w in summary["failures"]["worst"]]
            retrieval_gallery(result, result.submitted_variant, layout, out / "worst_queries.png", queries, tracks,
                              picks=picks, title=f"The {len(picks)} worst queries of "
                              f"{variant_label(result.submitted_variant)}: their top 5 (middle crop above the path), "
                              "the true track framed green after them")
            summary["figures"]["worst queries"] = "worst_queries.png"
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", render_markdown(summary))
    return summary
