"""``python -m mcp_server [--data-dir D] [--print-config]``, same as ``ops-trigger mcp``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from core.config import Settings
from mcp_server.main import main


def run(argv: list[str] | None = None) -> None:
    """Parse the command line, build the settings and run the server."""
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory")
    parser.add_argument("--print-config", action="store_true", help="print client JSON and exit")
    args = parser.parse_args(argv)
    try:
        settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per field, joined
        errors = exc.errors() if isinstance(exc, ValidationError) else []
        text = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in errors
        )
        sys.stderr.write(f"invalid settings: {text or str(exc).splitlines()[0]}\n")
        raise SystemExit(2) from None
    main(settings, print_config=args.print_config)


if __name__ == "__main__":
    run()
