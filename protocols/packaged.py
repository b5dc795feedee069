"""The clinical data shipped inside the package, read through ``importlib.resources``.

The only I/O in ``protocols/``: the package reading its own files, so it works from a source
tree, an installed wheel or a zip alike.
"""

from __future__ import annotations

from importlib import resources

_DATA = "data"


def read_packaged(*parts: str) -> tuple[str, str]:
    """(text, name for messages) of one file under ``protocols/data``."""
    node = resources.files("protocols").joinpath(_DATA, *parts)
    return node.read_text(encoding="utf-8"), "/".join(("protocols", _DATA, *parts))


def read_packaged_folder(folder: str) -> list[tuple[str, str]]:
    """(text, name) of every ``*.toml`` file in one folder under ``protocols/data``, by name."""
    node = resources.files("protocols").joinpath(_DATA, folder)
    names = sorted(item.name for item in node.iterdir() if item.name.endswith(".toml"))
    return [read_packaged(folder, name) for name in names]
