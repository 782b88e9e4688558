"""Stage 01 (notebook ``01_frames``): camera videos to numbered JPEG frames (``extract``), and its figures
(``figures``). ``python -m lib.frames DATA_ROOT`` is the command line."""

from lib.frames.extract import (
    MARKER,
    VIDEO,
    CameraResult,
    FramesReport,
    auto_workers,
    extract_camera,
    extract_dataset,
    find_cameras,
    frame_file,
    main,
    marker_covers,
    read_marker,
    referenced_frames,
    track_files,
    video_signature,
)

__all__ = ["MARKER", "VIDEO", "CameraResult", "FramesReport", "auto_workers", "extract_camera", "extract_dataset",
           "find_cameras", "frame_file", "main", "marker_covers", "read_marker", "referenced_frames", "track_files",
           "video_signature"]
