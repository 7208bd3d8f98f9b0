"""Command-line options the corpus benchmarks share (``bench_ingest``, ``bench_scaleout``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crm-sync-bench"
QUICK_MESSAGES = 2_000


def corpus_parser(prog: str, description: str, *, messages: int, keep: str) -> argparse.ArgumentParser:
    """A parser with the corpus options (size, seed, CRM size, cache) and the work-folder and output options;
    ``keep``: what ``--keep`` keeps. The benchmark adds its own options after these."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--messages", type=int, default=messages, help=f"corpus size (default {messages:,})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_MESSAGES:,} messages")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--leads", type=int, default=150)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where generated corpora are kept")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="parent of the temporary work folder (created if missing)"
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the work folder ({keep})")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    return parser


def parse_corpus_args(parser: argparse.ArgumentParser, argv: Any) -> argparse.Namespace:
    """Parse, apply ``--quick`` and check the corpus size (a usage error exits 2)."""
    args = parser.parse_args(argv)
    if args.quick:
        args.messages = QUICK_MESSAGES
    if args.messages < 10:
        parser.error("--messages must be at least 10")
    if args.workdir is not None:
        try:
            args.workdir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"--workdir {args.workdir}: {error.strerror or error}")
    return args


def write_json(path: Path | None, results: dict[str, Any]) -> None:
    """Every figure of a run to ``path`` (``--json``), when one was given."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
