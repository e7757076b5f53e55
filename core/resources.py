"""Where the bundled lessons and data sets are, in a checkout or an installed lab.

They live in ``resources/`` at the repository root, which the distribution installs
as the package ``gradlab_resources``: ``importlib.resources`` finds it in a wheel
installed anywhere and, through the editable install, in the checkout.  When that
package is not importable (``python main.py`` from a checkout that was never
installed), the checkout's own ``resources/`` folder is used.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGE = "gradlab_resources"
CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "resources"


def files() -> Traversable:
    """The top of the bundled files."""
    try:
        return importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        return CHECKOUT_DIR


def resource_path(*parts: str) -> Path:
    """The file-system path of a bundled file or folder, e.g. ``resource_path("lessons")``."""
    root = files()
    if not isinstance(root, os.PathLike):
        # An install that is not plain files on disk (a zip); the lab does not ship one.
        raise RuntimeError(f"the bundled files are not in a folder ({root!r})")
    return Path(root).joinpath(*parts)
