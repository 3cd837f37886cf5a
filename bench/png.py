"""A tiny PNG chart writer (points and bars on a grid), so the report needs no plotting library.

The charts carry no text: the Markdown report beside them gives the axes and the figures.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
GRID: Color = (225, 225, 225)
AXIS: Color = (120, 120, 120)
INK: Color = (65, 118, 144)


class Canvas:
    """An RGB image with a plotting area and its axes."""

    def __init__(self, width: int = 640, height: int = 240, margin: int = 20):
        self.width, self.height, self.margin = width, height, margin
        self.pixels = [bytearray(WHITE * width) for _ in range(height)]
        for step in range(5):
            y = margin + step * (height - 2 * margin) // 4
            self.line(margin, y, width - margin, y, GRID)
        self.line(margin, height - margin, width - margin, height - margin, AXIS)
        self.line(margin, margin, margin, height - margin, AXIS)

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.pixels[y][3 * x : 3 * x + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            self.dot(x0 + (x1 - x0) * s // steps, y0 + (y1 - y0) * s // steps, color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            self.line(x0, y, x1, y, color)

    def save(self, path: Path) -> None:
        raw = b"".join(b"\x00" + bytes(row) for row in self.pixels)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def scatter(points: Sequence[tuple[float, float]], path: Path) -> tuple[float, float]:
    """Points (x, y) from 0 to their maxima; the maxima, for the report's caption."""
    canvas = Canvas()
    top_x = max((x for x, _ in points), default=1.0) or 1.0
    top_y = max((y for _, y in points), default=1.0) or 1.0
    m, w, h = canvas.margin, canvas.width - 2 * canvas.margin, canvas.height - 2 * canvas.margin
    for x, y in points:
        px, py = m + int(x / top_x * w), m + h - int(y / top_y * h)
        canvas.rect(px - 1, py - 1, px + 1, py + 1, INK)
    canvas.save(path)
    return top_x, top_y


def bars(values: Sequence[float], path: Path) -> float:
    """One bar per value, left to right, from 0; the maximum, for the report's caption."""
    canvas = Canvas()
    top = max(values, default=1.0) or 1.0
    m, w, h = canvas.margin, canvas.width - 2 * canvas.margin, canvas.height - 2 * canvas.margin
    slot = w // max(1, len(values))
    for i, value in enumerate(values):
        x0 = m + i * slot + slot // 5
        canvas.rect(x0, m + h - int(value / top * h), x0 + slot * 3 // 5, m + h - 1, INK)
    canvas.save(path)
    return top
