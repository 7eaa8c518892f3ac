"""``python -m wslab.lab.conformance URL ...``: see :func:`wslab.lab.conformance.cli.main`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
