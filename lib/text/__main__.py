"""``python -m lib.text``: text preprocessing commands.

- ``augment IN OUT [--no-chunk previous|sentence|skip]`` — subject-prefix augmentation of one JSON file (either
  shape);
- ``prepare DATA_ROOT PREP_DIR [--n-val N]`` — ``PREP/split.json`` and both ``PREP/text/*_nlpaug.json`` files;
- ``split DATA_ROOT PREP_DIR [--n-val N]`` — only ``PREP/split.json``;
- ``agreement [ORIGINAL THEIRS]`` — agreement of our augmentation with the authors' val output
  (default: ``../shared/data/cityflow_nl_annotations/{val,val_nlpaug}.json``);
- ``parse SENTENCE...`` — the attribute parser on sentences (one track when ``--track``).
"""

from __future__ import annotations

import argparse
import json
import time

from lib.text.augment import NO_CHUNK_POLICIES


def _cmd_augment(args: argparse.Namespace) -> int:
    from lib.text.augment import augment_file

    t0 = time.perf_counter()
    stats = augment_file(args.input, args.output, no_chunk=args.no_chunk,
                         carry_across_tracks=not args.no_carry)
    print(f"{stats.tracks} entries, {stats.sentences} sentences ({stats.no_chunk} without a noun chunk) "
          f"-> {args.output} in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from lib.prep import split_file
    from lib.text.split import write_split

    split = write_split(args.data_root, args.prep_dir, n_val=args.n_val)
    print(f"{len(split['train'])} train / {len(split['val'])} val -> {split_file(args.prep_dir)}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from lib.text.augment import prepare_text

    _cmd_split(args)
    t0 = time.perf_counter()
    stats = prepare_text(args.data_root, args.prep_dir, no_chunk=args.no_chunk)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "examples_no_chunk"} for k, v in stats.items()}))
    print(f"text augmented in {time.perf_counter() - t0:.1f} s -> {args.prep_dir}/text")
    return 0


def _cmd_agreement(args: argparse.Namespace) -> int:
    from lib.text.augment import agreement, real_annotations_dir

    d = real_annotations_dir()
    original = args.original or d / "val.json"
    theirs = args.theirs or d / "val_nlpaug.json"
    a = agreement(original, theirs, no_chunk=args.no_chunk)
    print(f"prefixed sentences equal: {a.prefixed_equal}/{a.prefixed_total} ({a.prefixed_rate:.1%}); "
          f"joined 4th sentences equal: {a.joined_equal}/{a.joined_total} ({a.joined_rate:.1%}); "
          f"tracks entirely equal: {a.tracks_equal}/{a.tracks}")
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from lib.text.attributes import parse_sentence, parse_track

    if args.track:
        print(json.dumps(parse_track(args.sentences).to_dict()))
    else:
        for s in args.sentences:
            print(json.dumps({"sentence": s, **parse_sentence(s).to_dict()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.text", description="Text preprocessing (see lib/text).")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("augment", help="subject-prefix augmentation of a tracks or queries JSON file")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--no-chunk", choices=NO_CHUNK_POLICIES, default="previous",
                   help="what a sentence without a noun chunk gets (default: the previous chunk, as the original)")
    p.add_argument("--no-carry", action="store_true",
                   help="do not carry the previous chunk from one entry to the next (the original did)")
    p.set_defaults(func=_cmd_augment)

    for name, func, help_ in (("split", _cmd_split, "write PREP/split.json"),
                              ("prepare", _cmd_prepare, "split + augmented train tracks and test queries")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("data_root")
        p.add_argument("prep_dir")
        p.add_argument("--n-val", type=int, default=100)
        p.add_argument("--no-chunk", choices=NO_CHUNK_POLICIES, default="previous")
        p.set_defaults(func=func)

    p = sub.add_parser("agreement", help="agreement with the authors' val_nlpaug.json")
    p.add_argument("original", nargs="?", default=None)
    p.add_argument("theirs", nargs="?", default=None)
    p.add_argument("--no-chunk", choices=NO_CHUNK_POLICIES, default="previous")
    p.set_defaults(func=_cmd_agreement)

    p = sub.add_parser("parse", help="attribute parser on sentences")
    p.add_argument("sentences", nargs="+")
    p.add_argument("--track", action="store_true", help="combine the sentences as one track")
    p.set_defaults(func=_cmd_parse)

    args = ap.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    from lib.cli import run_main

    raise SystemExit(run_main(main))
