"""The lab's bundled files: lessons in ``lessons/``, data sets in ``datasets/``.

This folder is installed as the package ``gradlab_resources`` (see pyproject.toml), so
``importlib.resources`` finds it in a wheel as well as in a checkout; there is no code
here.  Read it through :mod:`core.resources`.
"""
