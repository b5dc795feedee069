"""Render the icon's PNG and Windows ICO from the SVG (run after changing the SVG; commit all).

    QT_QPA_PLATFORM=offscreen python installer/make_icons.py

The ICO holds the 256 px PNG as its single image (allowed since Windows Vista), so no imaging
library is needed beside Qt.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent / "icons"
SIZE = 256


def render_png(svg: Path, png: Path, size: int = SIZE) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    png.write_bytes(bytes(data))
    return bytes(data)


def png_to_ico(png_bytes: bytes, ico: Path) -> None:
    """ICONDIR (reserved, type 1, one image) + one ICONDIRENTRY (0 = 256 px) + the PNG."""
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png_bytes), 6 + 16)
    ico.write_bytes(header + entry + png_bytes)


def main() -> int:
    png = render_png(ICONS / "therapy-console.svg", ICONS / "therapy-console.png")
    png_to_ico(png, ICONS / "therapy-console.ico")
    print(f"wrote {ICONS / 'therapy-console.png'} and {ICONS / 'therapy-console.ico'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
