"""A small inline-SVG plotting kit: scales, ticks, axes, lines, bands, markers.

Why hand-built rather than a plotting library: the report must be one offline file of a few
hundred KB with 14+ chaos timelines. Here every data point costs ~8 bytes (integer pixel
coordinates, collinear runs dropped), colours live in one CSS block rather than on every
element, text stays text (searchable, printable, selectable), output is byte-for-byte
deterministic for a given report, and nothing is added to the install. Data marks carry the
class `mark` so a browser test can count what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

Point = tuple[float, float]


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def num(value: object) -> float | None:
    """A finite number, or None (bools, strings, NaN and missing keys are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value: float) -> str:
    """Tick label: short, no exponent for the ranges a report shows."""
    if value == 0:
        return "0"
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:g}M"
    if a >= 1e4:
        return f"{value / 1e3:g}k"
    if a >= 1:
        return f"{value:.4g}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 x 10^n steps)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


@dataclass
class Scale:
    """Data -> pixel along one axis; `log` uses log10 (values <= 0 are clamped to `lo`)."""

    lo: float
    hi: float
    p0: float  # pixel of lo
    p1: float  # pixel of hi
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.lo = max(self.lo, 1e-9)
            self.hi = max(self.hi, self.lo * 10)
        elif self.hi <= self.lo:
            self.hi = self.lo + 1.0

    def __call__(self, v: float) -> float:
        if self.log:
            v = max(v, self.lo)
            f = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            f = (v - self.lo) / (self.hi - self.lo)
        return self.p0 + f * (self.p1 - self.p0)

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            a, b = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            return [10.0 ** e for e in range(a, b + 1) if self.lo <= 10.0 ** e <= self.hi * 1.0001]
        return [t for t in nice_ticks(self.lo, self.hi, count)
                if self.lo - 1e-9 <= t <= self.hi + 1e-9]


def log_range(values: Iterable[float | None], floor: float = 0.01) -> tuple[float, float]:
    """Decade-aligned bounds for a log axis over the positive values."""
    vs = [v for v in values if v is not None and v > 0]
    if not vs:
        return 0.1, 10.0
    lo = 10 ** math.floor(math.log10(max(min(vs), floor)))
    hi = 10 ** math.ceil(math.log10(max(vs)))
    return lo, max(hi, lo * 10)


def simplify(points: Sequence[Point]) -> list[Point]:
    """Drop points that sit on the straight line between their neighbours (after rounding):
    a flat zero-failure series of 200 buckets becomes two points."""
    pts = [(round(x), round(y)) for x, y in points]
    out: list[Point] = []
    for p in pts:
        if out and out[-1] == p:
            continue
        if len(out) >= 2:
            (x0, y0), (x1, y1) = out[-2], out[-1]
            if (x1 - x0) * (p[1] - y0) == (p[0] - x0) * (y1 - y0):
                out[-1] = p
                continue
        out.append(p)
    return out


def _pts(points: Sequence[Point]) -> str:
    return " ".join(f"{x:g},{y:g}" for x, y in points)


@dataclass
class Panel:
    """One plotting area (x and y scale) whose elements are collected as SVG strings."""

    x: Scale
    y: Scale
    parts: list[str] = field(default_factory=list)
    marks: int = 0  # data marks drawn (points of lines, bars, dots)

    @property
    def left(self) -> float:
        return min(self.x.p0, self.x.p1)

    @property
    def right(self) -> float:
        return max(self.x.p0, self.x.p1)

    @property
    def top(self) -> float:
        return min(self.y.p0, self.y.p1)

    @property
    def bottom(self) -> float:
        return max(self.y.p0, self.y.p1)

    def frame(self) -> None:
        self.parts.append(f'<rect class="frame" x="{self.left:g}" y="{self.top:g}" '
                          f'width="{self.right - self.left:g}" '
                          f'height="{self.bottom - self.top:g}"/>')

    def x_axis(self, label: str | None, ticks: Sequence[float] | None = None,
               labels: Sequence[str] | None = None, grid: bool = True,
               tick_labels: bool = True) -> None:
        """Ticks (and grid lines) along the bottom; `tick_labels=False` for the upper panels of
        a stack sharing one time axis."""
        ticks = list(self.x.ticks(8) if ticks is None else ticks)
        for i, t in enumerate(ticks):
            px = round(self.x(t), 1)
            if grid:
                self.parts.append(f'<line class="grid" x1="{px:g}" x2="{px:g}" '
                                  f'y1="{self.top:g}" y2="{self.bottom:g}"/>')
            if not tick_labels:
                continue
            text = labels[i] if labels else fmt(t)
            self.parts.append(f'<text class="tick" x="{px:g}" y="{self.bottom + 12:g}" '
                              f'text-anchor="middle">{esc(text)}</text>')
        if label:
            self.parts.append(f'<text class="axis" x="{(self.left + self.right) / 2:g}" '
                              f'y="{self.bottom + 26:g}" text-anchor="middle">{esc(label)}'
                              '</text>')

    def y_axis(self, label: str | None, ticks: Sequence[float] | None = None,
               right: bool = False, grid: bool = True,
               labels: Sequence[str] | None = None) -> None:
        ticks = list(self.y.ticks(4) if ticks is None else ticks)
        x = self.right + 4 if right else self.left - 4
        anchor = "start" if right else "end"
        for i, t in enumerate(ticks):
            py = round(self.y(t), 1)
            if grid and not right:
                self.parts.append(f'<line class="grid" x1="{self.left:g}" x2="{self.right:g}" '
                                  f'y1="{py:g}" y2="{py:g}"/>')
            text = labels[i] if labels else fmt(t)
            self.parts.append(f'<text class="tick" x="{x:g}" y="{py + 3:g}" '
                              f'text-anchor="{anchor}">{esc(text)}</text>')
        if label:
            cy = (self.top + self.bottom) / 2
            lx = self.right + 40 if right else self.left - 40
            self.parts.append(f'<text class="axis" transform="translate({lx:g},{cy:g}) '
                              f'rotate(-90)" text-anchor="middle">{esc(label)}</text>')

    def line(self, data: Sequence[tuple[float, float | None]], cls: str,
             title: str | None = None, dots: bool = False) -> None:
        """A polyline over (x, y) data; a None y breaks the line (a gap, not a zero)."""
        runs: list[list[Point]] = [[]]
        for x, y in data:
            if y is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append((self.x(x), self.y(y)))
        tip = f"<title>{esc(title)}</title>" if title else ""
        for run in runs:
            if not run:
                continue
            self.marks += len(run)
            if len(run) == 1 or dots:
                for px, py in run:
                    self.parts.append(f'<circle class="mark {cls}" cx="{px:.1f}" '
                                      f'cy="{py:.1f}" r="2.5">{tip}</circle>')
                if len(run) == 1:
                    continue
            pts = simplify(run)
            self.parts.append(f'<polyline class="mark {cls}" data-n="{len(run)}" '
                              f'points="{_pts(pts)}">{tip}</polyline>')

    def step_band(self, spans: Sequence[tuple[float, float, str]], y0: float, y1: float,
                  title_prefix: str = "") -> None:
        """Coloured horizontal segments (e.g. breaker state over time) between pixels y0..y1."""
        for a, b, state in spans:
            xa, xb = self.x(a), self.x(b)
            self.marks += 1
            self.parts.append(f'<rect class="mark st-{esc(state)}" x="{xa:.1f}" y="{y0:g}" '
                              f'width="{max(xb - xa, 0.8):.1f}" height="{y1 - y0:g}">'
                              f'<title>{esc(title_prefix + state)}</title></rect>')

    def shade_x(self, a: float, b: float, cls: str = "fault", title: str | None = None) -> None:
        xa, xb = self.x(a), self.x(b)
        tip = f"<title>{esc(title)}</title>" if title else ""
        self.parts.append(f'<rect class="{cls}" x="{xa:.1f}" y="{self.top:g}" '
                          f'width="{max(xb - xa, 1):.1f}" height="{self.bottom - self.top:g}">'
                          f'{tip}</rect>')

    def vline(self, x: float, cls: str, label: str | None = None, title: str | None = None,
              label_y: float | None = None) -> None:
        px = self.x(x)
        tip = f"<title>{esc(title)}</title>" if title else ""
        self.parts.append(f'<line class="{cls}" x1="{px:.1f}" x2="{px:.1f}" y1="{self.top:g}" '
                          f'y2="{self.bottom:g}">{tip}</line>')
        if label:
            ly = self.top + 10 if label_y is None else label_y
            self.parts.append(f'<text class="mlabel {cls}" x="{px + 3:.1f}" y="{ly:g}">'
                              f'{esc(label)}</text>')

    def hline(self, y: float, cls: str, label: str | None = None) -> None:
        py = self.y(y)
        self.parts.append(f'<line class="{cls}" x1="{self.left:g}" x2="{self.right:g}" '
                          f'y1="{py:.1f}" y2="{py:.1f}"/>')
        if label:
            self.parts.append(f'<text class="mlabel {cls}" x="{self.right - 3:g}" '
                              f'y="{py - 3:.1f}" text-anchor="end">{esc(label)}</text>')

    def text(self, x: float, y: float, body: str, cls: str = "tick",
             anchor: str = "start") -> None:
        self.parts.append(f'<text class="{cls}" x="{x:g}" y="{y:g}" text-anchor="{anchor}">'
                          f'{esc(body)}</text>')


def legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    """Swatches and labels in one row: [(css class, label)]."""
    out, cx = [], x
    for cls, label in items:
        out.append(f'<rect class="sw {cls}" x="{cx:g}" y="{y - 7:g}" width="12" height="8"/>'
                   f'<text class="tick" x="{cx + 15:g}" y="{y:g}">{esc(label)}</text>')
        cx += 22 + 6.2 * len(label)
    return "".join(out)


LEGEND_ROW_PX = 14


def legend_rows(items: Sequence[tuple[str, str]], x: float, y: float, max_x: float
                ) -> tuple[str, float]:
    """Like `legend`, wrapped onto as many rows as needed to stay left of `max_x` (a legend
    must never run past its chart's edge); returns the markup and the y of the last row."""
    rows: list[list[tuple[str, str]]] = [[]]
    cx = x
    for cls, label in items:
        width = 22 + 6.2 * len(label)
        if rows[-1] and cx + width > max_x:
            rows.append([])
            cx = x
        rows[-1].append((cls, label))
        cx += width
    out = [legend(row, x, y + LEGEND_ROW_PX * i) for i, row in enumerate(rows)]
    return "".join(out), y + LEGEND_ROW_PX * (len(rows) - 1)


def svg(width: float, height: float, body: Iterable[str], *, title: str, marks: int,
        chart_id: str) -> str:
    """The chart element; `data-marks` is how many data marks it holds (a test compares)."""
    return (f'<svg class="chart" id="{esc(chart_id)}" viewBox="0 0 {width:g} {height:g}" '
            f'width="{width:g}" height="{height:g}" role="img" data-marks="{marks}" '
            f'aria-label="{esc(title)}">' + "".join(body) + "</svg>")
