"""The bundled files are found through the package gradlab_resources, or the checkout."""

from __future__ import annotations

import importlib.resources

from core import resources
from core.lessons import LESSONS_DIR
from core.tasks import series


def test_lessons_and_data_sets_come_from_one_place():
    assert LESSONS_DIR == resources.resource_path("lessons")
    assert series.DATA_DIR == resources.resource_path("datasets")
    assert (LESSONS_DIR / "vanishing_tanh.json").is_file()
    for ds in series.DATASETS.values():
        assert (series.DATA_DIR / ds.file).is_file()


def test_the_checkout_folder_when_the_package_is_not_installed(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", missing)
    assert resources.files() == resources.CHECKOUT_DIR
    assert resources.resource_path("lessons", "forget_gate.json").is_file()
