"""The ``keelwatch`` console script.

``keelwatch drift ...`` is the standalone, no-server path people script in CI pipelines, so it
skips building the whole command tree (registry, jobs, monitors, ops) and loads only the drift
sub-app; ``keelwatch moderate FILE`` likewise runs alone (no server, no data dir, and with
``KEELWATCH_API_URL`` set too: it never needs the API). Everything else goes through
:mod:`keelwatch.cli.app`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Dispatch to the drift sub-app or the moderate command directly, or to the full CLI."""
    if len(sys.argv) > 1 and sys.argv[1] == "drift":
        from keelwatch.cli.drift import drift_app

        drift_app(args=sys.argv[2:], prog_name="keelwatch drift")
        return
    if len(sys.argv) > 1 and sys.argv[1] == "moderate":
        import typer

        from keelwatch.cli.moderate import moderate

        moderate_app = typer.Typer(add_completion=False, rich_markup_mode=None)
        moderate_app.command()(moderate)
        moderate_app(args=sys.argv[2:], prog_name="keelwatch moderate")
        return
    from keelwatch.cli.app import main as full_main

    full_main()


if __name__ == "__main__":
    main()
