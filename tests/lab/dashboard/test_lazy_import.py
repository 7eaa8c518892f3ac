"""``import wslab.lab`` stays light: the dashboard's widgets load on first use only."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_wslab_lab_does_not_import_ipywidgets_until_asked() -> None:
    code = (
        "import sys, wslab, wslab.lab, wslab.hub\n"
        "assert 'ipywidgets' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "from wslab.lab import open_dashboard, Dashboard\n"
        "assert callable(open_dashboard) and isinstance(Dashboard, type)\n"
        "# Widgets come with the first dashboard; matplotlib only in the renderer process.\n"
        "assert 'ipywidgets' not in sys.modules and 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import wslab.lab

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        wslab.lab.nope  # noqa: B018
