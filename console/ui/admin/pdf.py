"""Qt's own PDF writer for the admin's reports: the report HTML laid out on A4 pages."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

RESOLUTION_DPI = 300


def write_pdf(html: str, path: Path, title: str) -> Path:
    """Print ``html`` to a PDF at ``path`` (A4, 15 mm margins); returns the path.

    Written to a temporary name first and moved into place, so a half-written file never
    carries the report's name."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give a file name for the PDF")
    if not path.parent.is_dir():
        raise ValueError(f"the folder {path.parent} does not exist: choose another place")
    tmp = path.with_name(f".{path.name}.partial")
    writer = QPdfWriter(str(tmp))
    writer.setResolution(RESOLUTION_DPI)
    writer.setTitle(title)
    writer.setCreator("therapy-console")
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    document = QTextDocument()
    document.setHtml(html)
    document.print_(writer)
    del writer  # flushes and closes the file
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise OSError(f"Qt wrote no PDF to {tmp}")
    tmp.replace(path)
    return path
