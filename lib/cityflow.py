"""The CityFlow-NL 2021 layout, shared by the real data and our synthetic copy.

``DATA_ROOT/{train,validation}/Sxx/cyyy/vdo.avi`` (frames extracted to ``.../img1/%06d.jpg`` from 1),
``train-tracks.json`` ``{uuid: {"frames": [...], "boxes": [[x, y, w, h], ...], "nl": [3 sentences]}}``,
``test-tracks.json`` (no ``nl``), ``test-queries.json`` ``{query_uuid: [3 sentences]}`` and, when available,
``test-gt.json`` ``{query_uuid: track_uuid}``.

The 2022 release (CityFlow-NL v2) has the same layout with three differences, all accepted: frame paths start with
``./`` (``./train/S01/c001/img1/000001.jpg``), tracks carry ``nl_other_views`` (sentences written from other
cameras; kept, not used by the published system) besides ``nl``, and test queries are objects
``{"nl": [...], "nl_other_views": [...]}`` rather than lists (:func:`load_queries` reads both).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.errors import InputError
from lib.io import read_json


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> Layout:
        return cls(Path(root).expanduser().resolve())

    @property
    def train_tracks(self) -> Path:
        return self.root / "train-tracks.json"

    @property
    def test_tracks(self) -> Path:
        return self.root / "test-tracks.json"

    @property
    def test_queries(self) -> Path:
        return self.root / "test-queries.json"

    @property
    def test_gt(self) -> Path:
        return self.root / "test-gt.json"

    def frame_path(self, rel: str) -> Path:
        return self.root / rel


def camera_of(frame_rel: str) -> str:
    """``train/S01/c001/img1/000001.jpg`` -> ``train/S01/c001``."""
    parts = Path(frame_rel).parts
    return "/".join(parts[:3])


def frame_index(frame_rel: str) -> int:
    """``.../img1/000123.jpg`` -> 123 (1-based, as in the file name)."""
    return int(Path(frame_rel).stem)


def load_tracks(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{track_uuid: track}}")
    return data


def query_sentences(value: Any, where: str, other_views: bool = False) -> list[str]:
    """The sentences of one query in either release's shape: a list (2021) or ``{"nl": [...], "nl_other_views":
    [...]}`` (2022). ``other_views`` appends the other views' sentences (off by default: the published system
    used ``nl`` only)."""
    if isinstance(value, list):
        nl, extra = value, []
    elif isinstance(value, dict) and "nl" in value:
        nl, extra = value["nl"], value.get("nl_other_views") or []
    else:
        raise InputError(f"{where}: expected a list of sentences or an object with field 'nl', got "
                         f"{type(value).__name__}")
    for name, sents in (("nl", nl), ("nl_other_views", extra)):
        if not isinstance(sents, list) or not all(isinstance(s, str) for s in sents):
            raise InputError(f"{where}: field {name!r}: expected a list of strings")
    return list(nl) + (list(extra) if other_views else [])


def with_other_views(tracks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A copy of ``tracks`` whose ``nl`` also holds each track's ``nl_other_views`` (2022 release: sentences written
    from other cameras' views), after its own; tracks without them are unchanged."""
    out = {}
    for uid, tr in tracks.items():
        extra = tr.get("nl_other_views") or []
        out[uid] = {**tr, "nl": [*(tr.get("nl") or []), *extra]} if extra else tr
    return out


def load_queries(path: str | os.PathLike[str], other_views: bool = False) -> dict[str, list[str]]:
    """``{query_uuid: [sentences]}`` from ``test-queries.json`` of either release (see :func:`query_sentences`)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{query_uuid: [sentences]}}")
    return {q: query_sentences(v, f"{path}: query {q}", other_views) for q, v in data.items()}


# --------------------------------------------------------------------------------------------------------------
# Validation of a dataset folder (synthetic or real)
# --------------------------------------------------------------------------------------------------------------

FRAME_PATH_RE = re.compile(r"^(?:\./)?(train|validation)/S\d+/c\d+/img1/\d{6}\.jpg$")
SIZE_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class Problem:
    """One finding of the validation, naming the file, the track (or query) and the field at fault."""

    kind: str  # missing_file, bad_json, length_mismatch, zero_area_box, box_outside_frame, no_sentences, ...
    file: str
    track: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.track is not None:
            where += f": track {self.track}"
        if self.field is not None:
            where += f": field {self.field!r}"
        return f"{where}: {self.message} [{self.kind}]"


class DatasetError(InputError):
    """A dataset folder that later stages cannot use; ``problems`` lists every error found."""

    def __init__(self, root: str | os.PathLike[str], problems: list[Problem]):
        self.root = Path(root)
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:40])
        more = f"\n  ... and {len(self.problems) - 40} more" if len(self.problems) > 40 else ""
        super().__init__(f"{self.root}: {len(self.problems)} dataset error(s):\n{shown}{more}")

    def one_line(self) -> str:
        """The first problem (file, track, field), and how many more there are."""
        if not self.problems:
            return f"{self.root}: dataset error"
        more = f" (and {len(self.problems) - 1} more; --debug lists them)" if len(self.problems) > 1 else ""
        return f"{self.root}: {self.problems[0]}{more}"


@dataclass
class ValidationReport:
    root: Path
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    frame_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # camera dir -> (width, height)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def n_errors(self) -> int:
        return len(self.errors)

    @property
    def n_warnings(self) -> int:
        return len(self.warnings)

    @property
    def error_counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.errors)

    @property
    def warning_counts(self) -> Counter[str]:
        return Counter(p.kind for p in self.warnings)

    def error(self, kind: str, file: str, track: str | None, fld: str | None, message: str) -> None:
        self.errors.append(Problem(kind, file, track, fld, message))

    def warn(self, kind: str, file: str, track: str | None, fld: str | None, message: str) -> None:
        self.warnings.append(Problem(kind, file, track, fld, message))

    def raise_if_errors(self) -> ValidationReport:
        if self.errors:
            raise DatasetError(self.root, self.errors)
        return self

    def summary(self) -> str:
        parts = [f"{self.root}: {self.n_errors} error(s), {self.n_warnings} warning(s)",
                 ", ".join(f"{k}={v}" for k, v in self.counts.items())]
        if self.warnings:
            parts.append("warnings: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.warning_counts.items())))
        if self.errors:
            parts.append("errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.error_counts.items())))
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "n_errors": self.n_errors, "n_warnings": self.n_warnings,
                "error_counts": dict(sorted(self.error_counts.items())),
                "warning_counts": dict(sorted(self.warning_counts.items())), "counts": dict(self.counts),
                "errors": [str(p) for p in self.errors[:200]], "warnings": [str(p) for p in self.warnings[:200]]}


def _read_dict(path: Path, report: ValidationReport, required: bool) -> dict[str, Any] | None:
    name = path.name
    if not path.exists():
        if required:
            report.error("missing_file", name, None, None, f"file not found: {path}")
        return None
    try:
        data = read_json(path)
    except ValueError as e:
        report.error("bad_json", name, None, None, str(e))
        return None
    if not isinstance(data, dict):
        report.error("bad_json", name, None, None, f"expected a JSON object, got {type(data).__name__}")
        return None
    return data


def unsafe_id_reason(id_: Any) -> str | None:
    """Why a track or query id cannot serve as a file name (None when it can): ids are data, not paths.

    Refused: a non-text or empty id, a path separator (``/`` or ``\\``), ``..``, NUL or another control character,
    and leading or trailing white space. Writers still map every id through :func:`lib.io.safe_name`."""
    if not isinstance(id_, str):
        return f"id is {type(id_).__name__}, not text"
    if not id_:
        return "empty id"
    if "/" in id_ or "\\" in id_:
        return "id contains a path separator"
    if ".." in id_ or id_ == ".":
        return "id contains '..' (or is '.')"
    if any(ord(c) < 32 or ord(c) == 127 for c in id_):
        return "id contains NUL or a control character"
    if id_ != id_.strip():
        return "id starts or ends with white space"
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_tracks(tracks: dict[str, Any], file: str, report: ValidationReport, require_nl: bool,
                    frame_sizes: dict[str, tuple[int, int]] | None = None) -> None:
    """Check every track of one tracks file into ``report`` (see ``validate_dataset``)."""
    sizes = frame_sizes or {}
    for uid, tr in tracks.items():
        why = unsafe_id_reason(uid)
        if why is not None:
            report.error("unsafe_id", file, repr(uid), None, f"{why}: track ids name files (motion maps, caches)")
            continue
        if not isinstance(tr, dict):
            report.error("bad_track", file, uid, None, f"expected an object, got {type(tr).__name__}")
            continue
        frames, boxes = tr.get("frames"), tr.get("boxes")
        if not isinstance(frames, list):
            report.error("missing_field", file, uid, "frames", "missing or not a list")
            frames = None
        if not isinstance(boxes, list):
            report.error("missing_field", file, uid, "boxes", "missing or not a list")
            boxes = None
        if frames is not None and not frames:
            report.error("empty_track", file, uid, "frames", "no frames")
        if frames is not None and boxes is not None and len(frames) != len(boxes):
            report.error("length_mismatch", file, uid, "boxes", f"{len(frames)} frames but {len(boxes)} boxes")
        cams: set[str] = set()
        if frames:
            bad = [i for i, f in enumerate(frames) if not isinstance(f, str) or not FRAME_PATH_RE.match(f)]
            if bad:
                report.error("bad_frame_path", file, uid, "frames",
                             f"{len(bad)} frame path(s) not like 'train/S01/c001/img1/000001.jpg', first #{bad[0]}: "
                             f"{frames[bad[0]]!r}")
            good = [f for f in frames if isinstance(f, str) and FRAME_PATH_RE.match(f)]
            cams = {camera_of(f) for f in good}
            if len(cams) > 1:
                report.warn("mixed_cameras", file, uid, "frames", f"frames from {len(cams)} cameras: {sorted(cams)}")
            idx = [frame_index(f) for f in good]
            if any(b <= a for a, b in zip(idx, idx[1:])):
                report.warn("frames_not_increasing", file, uid, "frames", "frame numbers are not strictly increasing")
            if any(i < 1 for i in idx):
                report.error("bad_frame_path", file, uid, "frames", "frame numbers start at 000001")
        if boxes:
            size = sizes.get(next(iter(cams))) if len(cams) == 1 else None
            _check_boxes(boxes, file, uid, report, size)
        other = tr.get("nl_other_views")
        if other is not None and (not isinstance(other, list) or not all(isinstance(s, str) for s in other)):
            report.error("bad_field", file, uid, "nl_other_views", "expected a list of strings")
        if require_nl:
            nl = tr.get("nl")
            if not isinstance(nl, list) or not nl:
                report.error("no_sentences", file, uid, "nl", "track without sentences")
            else:
                empty = [i for i, s in enumerate(nl) if not isinstance(s, str) or not s.strip()]
                if empty:
                    report.error("empty_sentence", file, uid, "nl", f"sentence #{empty[0]} is empty or not text")
                if len(nl) != 3:
                    report.warn("sentence_count", file, uid, "nl", f"{len(nl)} sentences (CityFlow-NL has 3)")


def _check_boxes(boxes: list[Any], file: str, uid: str, report: ValidationReport, size: tuple[int, int] | None
                 ) -> None:
    malformed, zero, outside, partly = [], [], [], []
    for i, b in enumerate(boxes):
        if not isinstance(b, list | tuple) or len(b) != 4 or not all(_is_number(v) for v in b):
            malformed.append(i)
            continue
        x, y, w, h = (float(v) for v in b)
        if w <= 0 or h <= 0:
            zero.append(i)
            continue
        if x + w <= 0 or y + h <= 0 or (size is not None and (x >= size[0] or y >= size[1])):
            outside.append(i)
        elif x < -SIZE_TOLERANCE_PX or y < -SIZE_TOLERANCE_PX or (size is not None and (
                x + w > size[0] + SIZE_TOLERANCE_PX or y + h > size[1] + SIZE_TOLERANCE_PX)):
            partly.append(i)
    if malformed:
        report.error("bad_box", file, uid, "boxes", f"{len(malformed)} box(es) not [x, y, w, h] numbers, first "
                     f"#{malformed[0]}: {boxes[malformed[0]]!r}")
    if zero:
        report.error("zero_area_box", file, uid, "boxes", f"{len(zero)} box(es) of zero area, first #{zero[0]}: "
                     f"{boxes[zero[0]]!r}")
    if outside:
        frame = f" of the {size[0]}x{size[1]} frame" if size else ""
        report.error("box_outside_frame", file, uid, "boxes", f"{len(outside)} box(es) entirely outside"
                     f"{frame}, first #{outside[0]}: {boxes[outside[0]]!r}")
    if partly:
        frame = f" {size[0]}x{size[1]}" if size else ""
        report.warn("box_partly_outside", file, uid, "boxes", f"{len(partly)} box(es) partly outside the frame"
                    f"{frame}, first #{partly[0]}: {boxes[partly[0]]!r}")


def _video_info(path: Path) -> tuple[int, int, int] | None:
    """(width, height, frame count) of a video, or None when OpenCV cannot open it."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return (w, h, n) if w > 0 and h > 0 else None
    finally:
        cap.release()


def count_frames(path: str | os.PathLike[str]) -> int:
    """How many frames of a video decode: ``grab()`` to the end (cheap: no colour conversion, nothing kept).

    Videos are counted, not trusted: a truncated file keeps the header of the full one, whose frame count OpenCV
    reports as ``CAP_PROP_FRAME_COUNT``."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        if cap.isOpened():
            while cap.grab():
                n += 1
    finally:
        cap.release()
    return n


def _count_frames_all(videos: list[Path]) -> dict[Path, int]:
    """:func:`count_frames` of each video, several at once (OpenCV decodes without the GIL): one thread per core,
    at most 8."""
    from concurrent.futures import ThreadPoolExecutor

    if len(videos) <= 1:
        return {v: count_frames(v) for v in videos}
    with ThreadPoolExecutor(max_workers=max(1, min(len(videos), os.cpu_count() or 1, 8))) as pool:
        return dict(zip(videos, pool.map(count_frames, videos)))


def _frame_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def validate_dataset(root: str | os.PathLike[str], check_frames: bool = False, *,
                     train_file: str = "train-tracks.json", test_file: str = "test-tracks.json",
                     queries_file: str = "test-queries.json", gt_file: str = "test-gt.json",
                     raise_on_error: bool = True) -> ValidationReport:
    """Validate a CityFlow-NL folder; raise ``DatasetError`` listing every error (unless ``raise_on_error=False``).

    Errors: a missing or unreadable JSON file, a track whose frames and boxes differ in length, a box of zero area
    or entirely outside its frame, a malformed frame path, a training track without sentences, a query without
    sentences, a query id without ground truth or ground truth naming an unknown track (when ``test-gt.json``
    exists). Counted warnings: boxes partly outside the frame, sentence counts other than 3, frame numbers not
    increasing, a camera whose frame size is unknown (no video, no extracted frame: the inside-frame check is
    skipped for it). With ``check_frames`` every referenced camera must have its ``vdo.avi`` (or extracted frames)
    and every referenced frame must exist in it; its frames are counted by decoding (:func:`count_frames`), so a
    truncated or corrupt video is an error naming the camera, how many frames decode and the tracks it breaks.
    """
    layout = Layout.of(root)
    report = ValidationReport(layout.root)
    if not layout.root.is_dir():
        report.error("missing_file", str(layout.root), None, None, "dataset folder not found")
        return report.raise_if_errors() if raise_on_error else report
    train = _read_dict(layout.root / train_file, report, required=True)
    test = _read_dict(layout.root / test_file, report, required=True)
    queries = _read_dict(layout.root / queries_file, report, required=True)
    gt = _read_dict(layout.root / gt_file, report, required=False)

    # Frame sizes per camera: from the video, else from an extracted frame.
    referenced: dict[str, list[tuple[str, str, int]]] = {}
    for fname, tracks in ((train_file, train), (test_file, test)):
        for uid, tr in (tracks or {}).items():
            frames = tr.get("frames") if isinstance(tr, dict) else None
            for f in frames if isinstance(frames, list) else []:
                if isinstance(f, str) and FRAME_PATH_RE.match(f):
                    referenced.setdefault(camera_of(f), []).append((fname, uid, frame_index(f)))
    sizes: dict[str, tuple[int, int]] = {}
    videos: dict[str, tuple[int, int, int] | None] = {}
    infos = {cam: _video_info(layout.root / cam / "vdo.avi") if (layout.root / cam / "vdo.avi").exists() else None
             for cam in sorted(referenced)}
    decoded_counts = _count_frames_all([layout.root / cam / "vdo.avi" for cam, i in infos.items()
                                        if i is not None]) if check_frames else {}
    for cam, refs in sorted(referenced.items()):
        video = layout.root / cam / "vdo.avi"
        info = infos[cam]
        videos[cam] = info
        if info is not None:
            sizes[cam] = (info[0], info[1])
        else:
            first = layout.root / cam / "img1" / f"{refs[0][2]:06d}.jpg"
            size = _frame_size(first) if first.exists() else None
            if size is not None:
                sizes[cam] = size
        if check_frames:
            if info is not None:
                decoded = decoded_counts[video]
                if decoded < info[2]:
                    broken = sorted({uid for _, uid, k in refs if k > decoded})
                    # an error when it breaks a track; a header one frame too long is common and harmless
                    (report.error if broken else report.warn)("video_truncated", f"{cam}/vdo.avi", None, None,
                                 f"truncated or corrupt: {decoded} of the {info[2]} frames its header announces "
                                 f"decode; it breaks {len(broken)} track(s)"
                                 + (f": {', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}" if broken else ""))
                info = (info[0], info[1], decoded)
            _check_camera_frames(layout.root, cam, refs, info, video, report)
        elif cam not in sizes:
            report.warn("frame_size_unknown", cam, None, None,
                        "no vdo.avi and no extracted frame: inside-frame check skipped for this camera")
    report.frame_sizes = sizes

    if train is not None:
        validate_tracks(train, train_file, report, require_nl=True, frame_sizes=sizes)
    if test is not None:
        validate_tracks(test, test_file, report, require_nl=False, frame_sizes=sizes)
    if train is not None and test is not None:
        both = sorted(set(train) & set(test))
        if both:
            report.warn("track_in_both_splits", test_file, both[0], None,
                        f"{len(both)} track id(s) in both {train_file} and {test_file}")
    if queries is not None:
        for qid, sents in queries.items():
            why = unsafe_id_reason(qid)
            if why is not None:
                report.error("unsafe_id", queries_file, repr(qid), None, f"{why}: query ids name files")
                continue
            if isinstance(sents, dict):  # the 2022 shape {"nl": [...], "nl_other_views": [...]}
                other = sents.get("nl_other_views")
                if other is not None and (not isinstance(other, list) or not all(isinstance(s, str) for s in other)):
                    report.error("bad_field", queries_file, qid, "nl_other_views", "expected a list of strings")
                sents = sents.get("nl")
            if not isinstance(sents, list) or not sents:
                report.error("no_sentences", queries_file, qid, None, "query without sentences")
                continue
            empty = [i for i, s in enumerate(sents) if not isinstance(s, str) or not s.strip()]
            if empty:
                report.error("empty_sentence", queries_file, qid, None, f"sentence #{empty[0]} is empty or not text")
            if len(sents) != 3:
                report.warn("sentence_count", queries_file, qid, None, f"{len(sents)} sentences (CityFlow-NL has 3)")
    if gt is not None and queries is not None:
        for qid in queries:
            if qid not in gt:
                report.error("query_without_gt", gt_file, qid, None, "query id has no ground-truth track")
        for qid, tid in gt.items():
            if qid not in queries:
                report.warn("gt_unknown_query", gt_file, qid, None, "ground truth for a query id not in "
                            f"{queries_file}")
            if test is not None and tid not in test:
                report.error("gt_unknown_track", gt_file, qid, None, f"ground-truth track {tid!r} is not in "
                             f"{test_file}")
    report.counts = {
        "train_tracks": len(train or {}), "test_tracks": len(test or {}), "queries": len(queries or {}),
        "gt": len(gt or {}), "cameras": len(referenced),
        "boxes": sum(len(t.get("boxes") or []) for d in (train, test) for t in (d or {}).values()
                     if isinstance(t, dict) and isinstance(t.get("boxes"), list)),
        "cameras_with_size": len(sizes),
    }
    return report.raise_if_errors() if raise_on_error else report


def check_tracks(tracks: dict[str, Any], path: str | os.PathLike[str], require_nl: bool,
                 data_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The validator's per-track checks (:func:`validate_tracks`) on the tracks a step is about to use, before its
    first step: training and embedding call it, so a bad box, a zero-frame track or frames and boxes of different
    lengths is a :class:`DatasetError` naming the file, the track and the field, not a crash inside a worker.

    Frame sizes come from one extracted frame (else the video header) per camera of ``data_root``, so a box entirely
    outside its frame is an error too. Boxes partly outside the frame are not an error; they are cropped by the
    family's published rule (Part One: the crop window keeps its size and the part outside the frame is black; Part
    Two: the window is clipped to the frame) and counted. Returns ``{"tracks_checked", "boxes",
    "boxes_partly_outside", "tracks_with_boxes_partly_outside"}`` for the step's ``metrics.json``."""
    file = Path(path).name
    report = ValidationReport(Path(data_root) if data_root is not None else Path(path).parent)
    sizes: dict[str, tuple[int, int]] = {}
    if data_root is not None:
        root = Path(data_root)
        firsts: dict[str, str] = {}
        for tr in tracks.values():
            frames = tr.get("frames") if isinstance(tr, dict) else None
            if isinstance(frames, list) and frames and isinstance(frames[0], str) and FRAME_PATH_RE.match(frames[0]):
                firsts.setdefault(camera_of(frames[0]), frames[0])
        for cam, rel in firsts.items():
            size = _frame_size(root / rel) if (root / rel).exists() else None
            if size is None and (root / cam / "vdo.avi").exists():
                info = _video_info(root / cam / "vdo.avi")
                size = (info[0], info[1]) if info is not None else None
            if size is not None:
                sizes[cam] = size
    validate_tracks(tracks, file, report, require_nl=require_nl, frame_sizes=sizes)
    if report.errors:
        raise DatasetError(Path(path).parent, report.errors)
    partly = [p for p in report.warnings if p.kind == "box_partly_outside"]
    n_partly = sum(int(p.message.split(" ", 1)[0]) for p in partly)
    return {"tracks_checked": len(tracks), "boxes": sum(len(t.get("boxes") or []) for t in tracks.values()),
            "boxes_partly_outside": n_partly, "tracks_with_boxes_partly_outside": len(partly),
            "cameras_with_size": len(sizes)}


def _check_camera_frames(root: Path, cam: str, refs: list[tuple[str, str, int]],
                         info: tuple[int, int, int] | None, video: Path, report: ValidationReport) -> None:
    img1 = root / cam / "img1"
    if info is None and not img1.is_dir():
        what = "cannot be opened" if video.exists() else "not found"
        report.error("missing_file", f"{cam}/vdo.avi", refs[0][1], "frames",
                     f"video {what} and no extracted frames in {cam}/img1 ({len(refs)} referenced frames)")
        return
    missing: dict[tuple[str, str], list[int]] = {}
    for fname, uid, k in refs:
        present = (info is not None and k <= info[2]) or (img1 / f"{k:06d}.jpg").exists()
        if not present:
            missing.setdefault((fname, uid), []).append(k)
    for (fname, uid), ks in missing.items():
        have = f"{info[2]} frames of the video decode" if info is not None else f"not in {cam}/img1"
        report.error("missing_frame", fname, uid, "frames", f"{len(ks)} frame(s) of {cam} missing, first "
                     f"{ks[0]:06d} ({have})")
