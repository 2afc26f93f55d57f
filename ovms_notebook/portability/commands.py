"""`ovms-notebook check CONFIG` and `ovms-notebook export GRAPH_OR_CONFIG OUT_DIR`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ovms_notebook.portability.check import DEFAULT_OVMS_VERSION

if TYPE_CHECKING:
    from ovms_notebook.portability.export import Exported
    from ovms_notebook.portability.report import Report


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add the `check` and `export` sub-commands to the CLI's parser."""
    check = commands.add_parser("check", help="can a stock OVMS serve these graphs? if not, exactly why")
    check.add_argument("config", help="an OVMS config.json, or a folder holding one")
    export = commands.add_parser("export", help="write an OVMS-ready folder (config, graphs, handlers, models)")
    export.add_argument("source", help="a config.json, a folder holding one, or one graph .pbtxt")
    export.add_argument("out_dir", help="the folder to write (must be empty or new)")
    export.add_argument("--image", help="container image for the printed docker/KServe lines")
    for parser in (check, export):
        parser.add_argument("--ovms-version", default=DEFAULT_OVMS_VERSION,
                            help=f"the OVMS release to compare with (default {DEFAULT_OVMS_VERSION})")
    check.add_argument("--timestamps", default="counter", choices=("counter", "wallclock"),
                       help="the timestamps option the graphs were tried with here (default counter)")
    check.add_argument("--timestamp-check", default="strict", choices=("strict", "mediapipe"),
                       help="the timestamp_check option the graphs were tried with here (default strict)")


def run(args: argparse.Namespace) -> int:
    """Run `check` or `export`; exit status 0 when portable, 1 when not, 2 on bad input."""
    from ovms_notebook.errors import OvmsNotebookError
    from ovms_notebook.portability.check import check
    from ovms_notebook.portability.export import export

    result: Report | Exported
    try:
        if args.command == "check":
            result = check(args.config, ovms_version=args.ovms_version, timestamps=args.timestamps,
                           timestamp_check=args.timestamp_check)
        else:
            result = export(args.source, args.out_dir, image=args.image, ovms_version=args.ovms_version)
    except (OvmsNotebookError, ValueError, OSError) as error:
        sys.stderr.write(f"ovms-notebook {args.command}: {error}\n")
        return 2
    sys.stdout.write(f"{result}\n")
    return 0 if result.portable else 1
