"""``python -m tfckd_lite model`` - describe a preset: parameters per block and FLOPs.

Notebook: 02_dpdcrn.ipynb
"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="parameters and FLOPs of a DPDCRN preset")
    parser.add_argument("preset", help="preset name, e.g. lite-teacher or paper-student")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from . import build_model, count_flops, parameter_table

    model = build_model(args.preset)
    table = parameter_table(model)
    gflops = count_flops(model) / 1e9
    if args.json:
        print(json.dumps({"preset": args.preset, "parameters": table,
                          "gflop_per_second": round(gflops, 3)}, indent=2))
        return 0
    width = max(map(len, table))
    for row, count in table.items():
        print(f"{row:<{width}}  {count:>10,}")
    print(f"{'GFLOP per second of audio':<{width}}  {gflops:>10.2f}")
    return 0
