"""The text of a PDF written by Qt, read back without any PDF library.

Qt writes each font as a Type0 font with an Identity-H encoding and a ``ToUnicode`` CMap, and
the page content as Flate-compressed streams of ``<glyph ids> Tj`` operations positioned one by
one. This reads exactly that: it inflates the streams, maps glyph ids to Unicode through each
font's CMap and joins the glyphs in drawing order (a new line where the y position changes).
Good enough to check that a report contains its figures; not a general PDF reader.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

_OBJECT = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)


def _objects(data: bytes) -> dict[int, bytes]:
    return {int(m.group(1)): m.group(2) for m in _OBJECT.finditer(data)}


def _stream(body: bytes) -> bytes | None:
    match = _STREAM.search(body)
    if match is None:
        return None
    raw = match.group(1)
    return zlib.decompress(raw) if b"/FlateDecode" in body.split(b"stream", 1)[0] else raw


def _cmap(text: bytes) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            mapping[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for lo, hi, rest in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)", block
        ):
            start, end = int(lo, 16), int(hi, 16)
            if rest.startswith(b"["):
                targets = re.findall(rb"<([0-9A-Fa-f]+)>", rest)
                for offset, target in enumerate(targets):
                    mapping[start + offset] = bytes.fromhex(target.decode()).decode("utf-16-be")
            else:
                first = int(rest.strip(b"<>"), 16)
                for offset in range(end - start + 1):
                    mapping[start + offset] = chr(first + offset)
    return mapping


def pdf_text(path: Path) -> str:
    data = Path(path).read_bytes()
    objects = _objects(data)
    fonts: dict[bytes, dict[int, str]] = {}
    for number, body in objects.items():
        if b"/Type /Font" in body and b"/ToUnicode" in body:
            ref = re.search(rb"/ToUnicode (\d+) 0 R", body)
            cmap_stream = _stream(objects[int(ref.group(1))]) if ref else None
            if cmap_stream is not None:
                fonts[f"/F{number}".encode()] = _cmap(cmap_stream)
    lines: list[str] = []
    for body in objects.values():
        head = body.split(b"stream", 1)[0]
        if b"/Length" not in head or b"/Type" in head or b"/Length1" in head:
            continue
        content = _stream(body)
        if content is None or b"Tj" not in content:
            continue
        font: dict[int, str] = {}
        current: list[str] = []
        for token in re.finditer(
            rb"(/F\d+) [\d.]+ Tf|([-\d.]+) ([-\d.]+) Td|<([0-9A-Fa-f]*)> Tj|BT|ET", content
        ):
            if token.group(1):
                font = fonts.get(token.group(1), {})
            elif token.group(2) is not None:
                if abs(float(token.group(3))) > 0.01 and current:
                    lines.append("".join(current))
                    current = []
            elif token.group(4) is not None:
                glyphs = token.group(4).decode()
                for i in range(0, len(glyphs), 4):
                    current.append(font.get(int(glyphs[i : i + 4], 16), "\ufffd"))
            elif token.group(0) == b"ET" and current:
                lines.append("".join(current))
                current = []
        if current:
            lines.append("".join(current))
    return "\n".join(lines)


def squeeze(text: str) -> str:
    """Without white space: Qt positions words, it does not always draw the spaces."""
    return re.sub(r"\s+", "", text)
