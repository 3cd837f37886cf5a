"""Small server-rendered SVG charts for the dashboard: no script, no CDN, text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 560
HEIGHT = 180
PAD_LEFT = 44
PAD_BOTTOM = 22
PAD_TOP = 10
PAD_RIGHT = 10


def _nice_max(value: float) -> float:
    """A round top for the axis at or above `value` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def line_chart(points: Sequence[tuple[datetime, float]], *, title: str) -> SafeString:
    """A line over time with a y axis from 0 and the first, middle and last times labelled."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    top = _nice_max(max((v for _, v in points), default=0.0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'class="ops-chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{PAD_TOP + plot_h}" stroke="#999"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end" font-size="10">'
        f"{_fmt(top)}</text>",
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" '
        'font-size="10">0</text>',
    ]
    if points:
        step = plot_w / max(1, len(points) - 1)
        coords = [
            (PAD_LEFT + i * step, PAD_TOP + plot_h - (v / top) * plot_h)
            for i, (_, v) in enumerate(points)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="#417690" stroke-width="2" points="{path}"/>')
        for index in sorted({0, len(points) // 2, len(points) - 1}):
            x = PAD_LEFT + index * step
            label = points[index][0].strftime("%H:%M")
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str) -> SafeString:
    """Horizontal bars, one per label, each with its value written at its end."""
    row, label_w = 20, 150
    height = PAD_TOP * 2 + row * len(bars)
    top = _nice_max(max((v for _, v in bars), default=0.0))
    plot_w = WIDTH - label_w - 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'class="ops-chart" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(bars):
        y = PAD_TOP + i * row
        width = (value / top) * plot_w
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="11">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" '
            f'fill="#79aec8" data-label="{escape(label)}" data-value="{_fmt(value)}"/>'
            f'<text x="{label_w + width + 4:.1f}" y="{y + 14}" font-size="11">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped
