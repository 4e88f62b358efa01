"""Hand-written inline SVG plots (no dependency): accuracy vs generated tokens, and a loss curve.

Inline SVG is part of the page itself: no script, no network, and a few KB per plot.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from .systems import PALETTE

MORE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def color_of(system: str, i: int = 0) -> str:
    """A report row's colour: its system's own, else the i-th of the other colours."""
    return PALETTE.get(system, MORE_COLORS[i % len(MORE_COLORS)])


@dataclass(frozen=True)
class Point:
    label: str  # text next to the marker
    x: float  # mean generated tokens
    y: float | None  # accuracy (0..1), or label-free agreement when ``hollow``
    lo: float | None = None
    hi: float | None = None
    color: str = "#333"
    hollow: bool = False  # label-free agreement instead of accuracy
    title: str = ""  # hover text


@dataclass(frozen=True)
class Curve:
    """A line through the plot, e.g. a cascade at every threshold (its chosen point is a :class:`Point`)."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: str = "#333"


def _f(v: float) -> str:
    return f"{v:.1f}"


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10 ** e
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


def _tick_label(t: float) -> str:
    return f"{t:g}" if t < 1e4 else f"{t / 1000:g}k"


def accuracy_tokens_svg(points: Sequence[Point], width: int = 640, height: int = 380,
                        y_label: str = "accuracy % (95% CI)", curves: Sequence[Curve] = ()) -> str:
    """Scatter of accuracy (y, 0-100%) against mean generated tokens (x, log scale), error bars
    for the 95% intervals, every point labelled; ``curves`` are drawn as dashed lines under the points."""
    pts = [p for p in points if p.y is not None and p.x is not None]
    ml, mr, mt, mb = 56, 150, 16, 46
    pw, ph = width - ml - mr, height - mt - mb
    xs = [max(p.x, 0.5) for p in pts] + [max(x, 0.5) for c in curves for x in c.xs]
    xs = xs or [1.0, 10.0]
    lo, hi = min(xs) / 1.6, max(xs) * 1.6
    if hi / lo < 10:  # at least one decade, centred
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
    lx0, lx1 = math.log10(lo), math.log10(hi)

    def X(v: float) -> float:
        return ml + (math.log10(max(v, 0.5)) - lx0) / (lx1 - lx0) * pw

    def Y(v: float) -> float:
        return mt + (1 - v) * ph

    out = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="accuracy against mean generated tokens">',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>']
    for v in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(Y(v))}" y2="{_f(Y(v))}" stroke="#eee"/>'
                   f'<text x="{ml - 6}" y="{_f(Y(v) + 4)}" text-anchor="end" class="tick">{int(v * 100)}</text>')
    for t in _log_ticks(lo, hi):
        out.append(f'<line y1="{mt}" y2="{mt + ph}" x1="{_f(X(t))}" x2="{_f(X(t))}" stroke="#eee"/>'
                   f'<text x="{_f(X(t))}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{_tick_label(t)}</text>')
    out.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle" class="axis">mean generated tokens '
               f'per answer (log scale)</text>'
               f'<text transform="translate(14 {mt + ph / 2}) rotate(-90)" text-anchor="middle" class="axis">'
               f'{escape(y_label)}</text>')
    for c in curves:
        path = " ".join(f"{'M' if i == 0 else 'L'}{_f(X(x))},{_f(Y(y))}" for i, (x, y) in enumerate(zip(c.xs, c.ys)))
        out.append(f'<path class="curve" d="{path}" fill="none" stroke="{c.color}" stroke-width="1.5" '
                   f'stroke-dasharray="5 3"><title>{escape(c.label)}</title></path>')
    placed: list[tuple[float, float, float]] = []
    for p in pts:
        out.append(_point_svg(p, X(p.x), Y(p.y), Y, placed, mt, ph))
    if any(p.hollow for p in pts):
        out.append(f'<circle cx="{ml + pw + 14}" cy="{mt + 8}" r="5" fill="#fff" stroke="#555" stroke-width="2"/>'
                   f'<text x="{ml + pw + 24}" y="{mt + 12}" class="tick">agreement with System 2</text>'
                   f'<text x="{ml + pw + 24}" y="{mt + 26}" class="tick">(no gold labels)</text>')
    out.append("</svg>")
    return "".join(out)


def _point_svg(p: Point, cx: float, cy: float, Y: Callable[[float], float], placed: list[tuple[float, float, float]], mt: float,
               ph: float) -> str:
    """One labelled point with its error bar; its label on the nearest free line (``placed`` grows)."""
    g = [f'<g class="pt"><title>{escape(p.title or p.label)}</title>']
    if p.lo is not None and p.hi is not None:
        g.append(f'<line x1="{_f(cx)}" x2="{_f(cx)}" y1="{_f(Y(p.hi))}" y2="{_f(Y(p.lo))}" stroke="{p.color}" '
                 f'stroke-width="1.5"/><line x1="{_f(cx - 4)}" x2="{_f(cx + 4)}" y1="{_f(Y(p.hi))}" '
                 f'y2="{_f(Y(p.hi))}" stroke="{p.color}"/><line x1="{_f(cx - 4)}" x2="{_f(cx + 4)}" '
                 f'y1="{_f(Y(p.lo))}" y2="{_f(Y(p.lo))}" stroke="{p.color}"/>')
    fill = "#fff" if p.hollow else p.color
    g.append(f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="5" fill="{fill}" stroke="{p.color}" stroke-width="2"/>')
    tw = 6.8 * len(p.label)  # keep labels apart: the nearest free line above or below, inside the plot
    ty = cy + 4
    for k in range(40):
        cand = cy + 4 + (k + 1) // 2 * 12 * (-1 if k % 2 else 1)
        if mt + 10 <= cand <= mt + ph - 2 and not any(
                abs(cand - py) < 12 and cx + 8 < px + pw_ and px < cx + 8 + tw for px, py, pw_ in placed):
            ty = cand
            break
    placed.append((cx + 8, ty, tw))
    g.append(f'<text x="{_f(cx + 8)}" y="{_f(ty)}" class="lbl" fill="{p.color}">{escape(p.label)}</text></g>')
    return "".join(g)


def line_svg(xs: Sequence[float], ys: Sequence[float], x_label: str, y_label: str, width: int = 640,
             height: int = 260) -> str:
    """A simple line plot with linear axes (e.g. training loss against step)."""
    ml, mr, mt, mb = 56, 16, 12, 42
    pw, ph = width - ml - mr, height - mt - mb
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
    x1 = x1 if x1 > x0 else x0 + 1

    def X(v):
        return ml + (v - x0) / (x1 - x0) * pw

    def Y(v):
        return mt + (1 - (v - y0) / (y1 - y0)) * ph

    out = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(y_label)} against {escape(x_label)}">',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#bbb"/>']
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{_f(Y(v))}" y2="{_f(Y(v))}" stroke="#eee"/>'
                   f'<text x="{ml - 6}" y="{_f(Y(v) + 4)}" text-anchor="end" class="tick">{v:.3g}</text>')
    for i in range(6):
        v = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{_f(X(v))}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{v:.4g}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{_f(X(x))},{_f(Y(y))}" for i, (x, y) in enumerate(zip(xs, ys)))
    out.append(f'<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    if len(xs) <= 60:
        out += [f'<circle cx="{_f(X(x))}" cy="{_f(Y(y))}" r="2.5" fill="#1f77b4"><title>{x:g}: {y:.4g}</title></circle>'
                for x, y in zip(xs, ys)]
    out.append(f'<text x="{ml + pw / 2}" y="{height - 6}" text-anchor="middle" class="axis">{escape(x_label)}</text>'
               f'<text transform="translate(14 {mt + ph / 2}) rotate(-90)" text-anchor="middle" class="axis">'
               f'{escape(y_label)}</text></svg>')
    return "".join(out)
