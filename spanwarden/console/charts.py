"""Charts drawn on the server as inline SVG (no chart library, no script): a sparkline for a table cell and
a line chart with one line per series. Colours are presentation attributes, so the strict CSP (no inline
styles) holds."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#64748b")


def _points(values: list[float], width: float, height: float, top: float, peak: float) -> str:
    if len(values) == 1:
        values = values * 2
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{top + height - (v / peak) * height if peak else top + height:.1f}"
                    for i, v in enumerate(values))


def sparkline(values: list[float], width: int = 120, height: int = 24) -> Markup:
    if not values:
        return Markup("")
    peak = max(values)
    label = escape(f"spend per interval, peak ${peak:.4f}")
    return Markup(f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img" aria-label="{label}"><polyline fill="none" stroke="#2563eb" stroke-width="1.5" '
                  f'points="{_points(values, width, height - 2, 1, peak)}"/></svg>')


def line_chart(series: dict[str, list[float]], start_s: float, step_s: float, width: int = 720,
               height: int = 220) -> Markup:
    """USD per interval, one line per series, with the peak, the time range and a legend."""
    if not series:
        return Markup('<p class="muted">No priced spans recorded for this agent.</p>')
    left, plot_h = 60, height - 70
    axis_y, legend_y = 10 + plot_h + 12, 10 + plot_h + 30
    plot_w = width - left - 10
    peak = max(max(v) for v in series.values())
    length = max(len(v) for v in series.values())
    end = start_s + step_s * length
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="spend over time by model">',
             f'<line x1="{left}" y1="10" x2="{left}" y2="{10 + plot_h}" stroke="#94a3b8"/>',
             f'<line x1="{left}" y1="{10 + plot_h}" x2="{left + plot_w}" y2="{10 + plot_h}" stroke="#94a3b8"/>',
             f'<text x="{left - 4}" y="16" text-anchor="end" font-size="10">${peak:.4f}</text>',
             f'<text x="{left - 4}" y="{10 + plot_h}" text-anchor="end" font-size="10">$0</text>',
             f'<text x="{left}" y="{axis_y}" font-size="10">{_when(start_s)}</text>',
             f'<text x="{left + plot_w}" y="{axis_y}" text-anchor="end" font-size="10">'
             f'{_when(end)} (per {step_s / 60:.1f} min)</text>']
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(_shift(p, left) for p in _points(values, plot_w, plot_h, 10, peak).split())
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        x = left + (n % 4) * 170
        y = legend_y + (n // 4) * 12
        parts.append(f'<rect x="{x}" y="{y - 8}" width="10" height="8" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{y}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _shift(point: str, dx: float) -> str:
    x, y = point.split(",")
    return f"{float(x) + dx:.1f},{y}"


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%m-%d %H:%M")
