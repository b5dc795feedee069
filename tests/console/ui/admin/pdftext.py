"""The text of a PDF written by Qt, read back without any PDF library.

Qt writes each font as a Type0 font with an Identity-H encoding and a ``ToUnicode`` CMap, and
the page content as Flate-compressed streams of ``<glyph ids> Tj`` operations positioned one by
one. This reads exactly that: it inflates the streams, maps glyph ids to Unicode through each
font's CMap and joins the glyphs in drawing order (a new line where the y position changes).
Good enough to check that a report contains its figures; not a general PDF reader.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from pathlib import Path

_OBJECT_START = re.compile(rb"(\d+) 0 obj")
_NUMBER_OBJECT = re.compile(rb"(\d+) 0 obj\s*(\d+)\s*endobj")
_LENGTH = re.compile(rb"/Length (\d+)( 0 R)?")


def _objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Object number → (dictionary text, raw stream bytes or None). Streams are cut by their
    /Length (direct or an indirect number object), never by searching for "endstream": a
    compressed stream may contain any bytes, that word included."""
    numbers = {int(m.group(1)): int(m.group(2)) for m in _NUMBER_OBJECT.finditer(data)}
    found: dict[int, tuple[bytes, bytes | None]] = {}
    pos = 0
    while (m := _OBJECT_START.search(data, pos)) is not None:
        number, start = int(m.group(1)), m.end()
        end = data.find(b"endobj", start)
        stream_at = data.find(b"stream", start)
        if stream_at != -1 and (stream_at < end or end == -1):
            head = data[start:stream_at]
            length_match = _LENGTH.search(head)
            if length_match is None:
                raise ValueError(f"object {number}: a stream without /Length")
            length = int(length_match.group(1))
            if length_match.group(2):
                length = numbers[length]
            body_start = stream_at + len(b"stream")
            body_start += 2 if data[body_start : body_start + 2] == b"\r\n" else 1
            raw = data[body_start : body_start + length]
            found[number] = (head, raw)
            pos = data.find(b"endobj", body_start + length) + len(b"endobj")
        else:
            found[number] = (data[start:end], None)
            pos = end + len(b"endobj")
    return found


def _stream(entry: tuple[bytes, bytes | None]) -> bytes | None:
    head, raw = entry
    if raw is None:
        return None
    return zlib.decompress(raw) if b"/FlateDecode" in head else raw


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
    for number, (head, _raw) in objects.items():
        if b"/Type /Font" in head and b"/ToUnicode" in head:
            ref = re.search(rb"/ToUnicode (\d+) 0 R", head)
            cmap_stream = _stream(objects[int(ref.group(1))]) if ref else None
            if cmap_stream is not None:
                fonts[f"/F{number}".encode()] = _cmap(cmap_stream)
    lines: list[str] = []
    for head, raw in objects.values():
        if raw is None or b"/Type" in head or b"/Length1" in head:
            continue
        content = _stream((head, raw))
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
    """Without white space (Qt positions words, it does not always draw the spaces) and with
    ligatures spelt out (Qt draws "ff" in "…3eff" as the one glyph U+FB00)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
