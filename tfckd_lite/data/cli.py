"""``python -m tfckd_lite data ...`` - build, verify and inspect datasets.

Notebook: 01_signals_and_data.ipynb

    python -m tfckd_lite data build --profile mini --out data/generated/mini
    python -m tfckd_lite data build --profile mc-mini --out data/generated/mc-mini   # L3DAS23-like
    python -m tfckd_lite data verify data/generated/mini
    python -m tfckd_lite data info /path/to/VoiceBank        # any supported corpus
    python -m tfckd_lite data sources                        # which speech sources are installed
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build the reduced dataset, inspect corpora")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    build = commands.add_parser("build", help="build (or verify and reuse) the reduced dataset")
    build.add_argument("--profile", default="mini",
                       choices=["mini", "small", "mc-mini", "mc-small"],
                       help="mini: CI-sized, seconds; small: thousands of pairs (default: "
                            "mini); mc-mini, mc-small: the simulated multi-channel L3DAS23 "
                            "(rooms, two Ambisonics microphones)")
    build.add_argument("--out", required=True, help="output folder, e.g. data/generated/small")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--workers", type=int, default=None,
                       help="processes (default: 2 for large sets); never changes the output")
    build.add_argument("--force", action="store_true", help="rebuild even if intact")
    build.add_argument("--asterisk-root", default=None,
                       help="asterisk sounds folder (default: $TFCKD_ASTERISK_SOUNDS or "
                            "/usr/share/asterisk/sounds)")
    build.add_argument("--no-asterisk", action="store_true", help="leave recorded speech out")
    build.add_argument("--no-espeak", action="store_true", help="leave synthetic speech out")
    build.add_argument("--quiet", action="store_true")
    build.set_defaults(func=run_build)

    verify = commands.add_parser("verify", help="check a built set against its manifest")
    verify.add_argument("root")
    verify.set_defaults(func=run_verify)

    info = commands.add_parser("info", help="kind and split sizes of a corpus folder")
    info.add_argument("root")
    info.add_argument("--kind", default="auto",
                      choices=["auto", "reduced", "voicebank", "dns", "l3das23"])
    info.set_defaults(func=run_info)

    sources = commands.add_parser("sources", help="which speech sources are installed")
    sources.add_argument("--asterisk-root", default=None)
    sources.add_argument("--profile", default=None, choices=["mini", "small"],
                         help="also list the recorded prompts (count, minutes) that each split "
                              "of this profile draws from")
    sources.set_defaults(func=run_sources)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_build(args) -> int:
    from .builder import build_dataset

    build_dataset(args.out, profile=args.profile, seed=args.seed, progress=not args.quiet,
                  asterisk_root=args.asterisk_root, use_asterisk=not args.no_asterisk,
                  use_espeak=not args.no_espeak, workers=args.workers, force=args.force)
    return 0


def run_verify(args) -> int:
    from .builder import verify_dataset

    problems = verify_dataset(args.root)
    if problems:
        print(f"{args.root}: {len(problems)} problem(s)")
        for line in problems[:20]:
            print("  " + line)
        return 1
    print(f"{args.root}: intact")
    return 0


def run_info(args) -> int:
    from .corpora import CorpusError, detect_kind, open_corpus

    kind = detect_kind(args.root) if args.kind == "auto" else args.kind
    print(f"{args.root}: {kind}")
    for split in ("train", "valid", "test"):
        try:
            dataset = open_corpus(args.root, split, kind=kind)
        except CorpusError as error:
            print(f"  {split:<5}  -  ({str(error).splitlines()[0]})")
            continue
        hours = sum(dataset.lengths) / 16000 / 3600
        print(f"  {split:<5}  {len(dataset):>6} pairs  {hours:6.2f} h")
    return 0


def run_sources(args) -> int:
    from . import speech

    status = speech.asterisk_status(args.asterisk_root)
    status["espeak"] = speech.espeak_version()
    if args.profile:
        from .builder import recorded_speech_pools

        status["recorded_pools"] = recorded_speech_pools(args.profile, args.asterisk_root)
    print(json.dumps(status, indent=2))
    if status["missing"]:
        print(f"\nmissing recorded speakers: {', '.join(status['missing'])}\ninstall with: "
              f"{speech.INSTALL_HINT}", file=sys.stderr)
    return 0
