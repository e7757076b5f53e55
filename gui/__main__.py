"""``python -m gui``: launch the desktop app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Start the app with Qt's own command-line arguments; return its exit status."""
    from .app import run_app

    return run_app(sys.argv if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
