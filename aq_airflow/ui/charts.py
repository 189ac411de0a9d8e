"""Server-side SVG charts for the quality pages: no JavaScript, nothing fetched from anywhere.

- a metric: its value by logical date (a line, points), the static bounds as dashed lines, the
  learned band (mean ± max_zscore · stddev, narrowed by max_change) as a shaded area, and points
  that did not pass in red; each point's title (the browser's tooltip) gives date, value, outcome
  and message;
- a check: a strip of cells, one per logical date, coloured by verdict (passed, failed warning,
  failed error, error); a title on each cell gives the date, the failing rows and the message.
  Runs of passed dates are drawn as one cell, so a year of green costs one element.

Every text that comes from a spec or a warehouse row (names, messages, dates as written) is
escaped here (``html.escape`` with quotes) before it enters the SVG, as text or attribute. The
SVG is returned as a string for the templates to embed inline (``Markup``).
"""

from __future__ import annotations

import datetime
import html
import math
import sys
from collections.abc import Callable, Sequence

from aq_airflow.results.history import CheckResult, CheckSeries, MetricPoint, MetricSeries
from aq_airflow.results.rows import Verdict

PASSED, WARNING, FAILED, ERROR, OTHER = Verdict.PASSED, Verdict.WARNING, Verdict.FAILED, Verdict.ERROR, Verdict.OTHER

COLOURS = {PASSED: "#2e7d32", WARNING: "#f2a900", FAILED: "#c62828", ERROR: "#6a1b9a", OTHER: "#9e9e9e"}
LABELS = {PASSED: "passed", WARNING: "failed (warning)", FAILED: "failed (error)", ERROR: "error", OTHER: "other"}
LINE, BAND, BOUND, BROKEN = "#1565c0", "#90caf9", "#616161", "#d32f2f"
WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 24
STRIP_HEIGHT = 18
MAX_TITLE = 240  # characters of a message in a tooltip
ALL_POINTS = 120  # series up to this long get a point (and tooltip) per date; longer: broken points only


def esc(value: object) -> str:
    """Text for SVG/HTML content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def short(text: object, most: int = MAX_TITLE) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= most else value[: most - 1] + "…"


def day(moment: datetime.datetime | None) -> str:
    if moment is None:
        return ""
    if moment.hour == moment.minute == moment.second == 0 and not moment.microsecond:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:,.0f}" if magnitude >= 1e4 else f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high]."""
    span = high - low
    if not math.isfinite(span) or span <= 0 or span / count < 1e-300:  # a level line, or values at a double's ends
        return [low] if math.isfinite(low) else []
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9 and len(ticks) < 12:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points, broken where one is None; a point in the middle of a
    level run is left out (a bound that stayed put for a year is one segment, not 365)."""
    parts: list[str] = []
    pen_down = False
    last = len(points) - 1
    for i, point in enumerate(points):
        if point is None:
            pen_down = False
            continue
        if pen_down and i < last:
            before, after = points[i - 1], points[i + 1]
            if (
                before is not None
                and after is not None
                and abs(before[1] - point[1]) < 0.05
                and abs(after[1] - point[1]) < 0.05
            ):
                continue
        parts.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return "".join(parts)


def _band_polygons(xs: list[float], bands: list[tuple[float, float] | None], y) -> list[str]:
    """The shaded learned band, one polygon per run of dates that have one."""
    polygons, run = [], []
    for x, band in [*zip(xs, bands, strict=True), (None, None)]:
        if band is not None and x is not None:
            run.append((x, band))
            continue
        if run:
            if len(run) == 1:  # a lone date: a narrow rectangle, visible
                x0, (low, high) = run[0]
                run = [(x0 - 2, (low, high)), (x0 + 2, (low, high))]
            upper = " ".join(f"{px:.1f},{y(high):.1f}" for px, (_, high) in run)
            lower = " ".join(f"{px:.1f},{y(low):.1f}" for px, (low, _) in reversed(run))
            polygons.append(f"{upper} {lower}")
        run = []
    return polygons


def _point_title(point: MetricPoint) -> str:
    lines = [f"{day(point.logical_date)}: {number(point.value)} ({point.outcome or 'no outcome'})"]
    band = point.bounds.band
    if point.bounds.minimum is not None or point.bounds.maximum is not None:
        lines.append(f"bounds {number(point.bounds.minimum)} .. {number(point.bounds.maximum)}")
    if band:
        lines.append(f"learned band {number(band[0])} .. {number(band[1])}")
    if point.message:
        lines.append(short(point.message))
    return esc("\n".join(lines))


def metric_chart(series: MetricSeries, mark: datetime.datetime | None = None,
                 link: Callable[[MetricPoint], str | None] | None = None) -> str:  # fmt: skip
    """The SVG of one metric over its dates (``mark``: a date to ring, the task instance's;
    ``link``: where a point that did not pass leads, its task instance's page)."""
    points = series.points
    label = f"{series.name} ({series.step_label})"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{esc(label)}">'
    )
    if not points:
        return (
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">no values</text></svg>'
        )
    dates = [p.logical_date for p in points]
    first, last = min(dates), max(dates)
    span = (last - first).total_seconds() or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime.datetime) -> float:
        if first == last:
            return LEFT + inner_w / 2
        return LEFT + (moment - first).total_seconds() / span * inner_w

    values = [p.value for p in points if p.value is not None]
    extent = list(values)
    for p in points:
        extent += [v for v in (p.bounds.minimum, p.bounds.maximum) if v is not None]
        if p.bounds.band:
            extent += list(p.bounds.band)
    extent = [v for v in extent if math.isfinite(v)]
    low, high = (min(extent), max(extent)) if extent else (0.0, 1.0)
    if not high / 2 - low / 2 > 1e-300:  # a level line (or one too thin for a double to draw)
        low, high = low - (abs(low) * 0.1 or 1), high + (abs(high) * 0.1 or 1)
    pad = (high / 2 - low / 2) * 0.16  # halves: values near a double's ends must not overflow
    low, high = max(low - pad, -sys.float_info.max), min(high + pad, sys.float_info.max)

    def y(value: float) -> float:
        return TOP + (high / 2 - value / 2) / (high / 2 - low / 2) * inner_h

    xs = [x(p.logical_date) for p in points]
    out = [head]
    for tick in _ticks(low, high):  # grid and y labels
        ty = y(tick)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{ty + 3.5:.1f}" text-anchor="end" class="axis">{esc(number(tick))}</text>')
    for polygon in _band_polygons(xs, [p.bounds.band for p in points], y):
        out.append(
            f'<polygon points="{polygon}" fill="{BAND}" fill-opacity="0.45"><title>learned band</title></polygon>'
        )
    for attribute in ("minimum", "maximum"):  # static bounds, as they were on each date
        line = [
            (px, y(v)) if (v := getattr(p.bounds, attribute)) is not None else None
            for px, p in zip(xs, points, strict=True)
        ]
        if any(line):
            name = "minimum" if attribute == "minimum" else "maximum"
            flat = [pt for pt in line if pt]
            if len(flat) == 1:
                line = [(flat[0][0] - 6, flat[0][1]), (flat[0][0] + 6, flat[0][1])]
            out.append(f'<path d="{_path(line)}" stroke="{BOUND}" stroke-dasharray="5 3" fill="none">'
                       f"<title>{name} bound</title></path>")  # fmt: skip
    line = [(px, y(p.value)) if p.value is not None else None for px, p in zip(xs, points, strict=True)]
    out.append(f'<path d="{_path(line)}" stroke="{LINE}" stroke-width="1.6" fill="none"/>')
    every = len(points) <= ALL_POINTS
    for px, p in zip(xs, points, strict=True):
        ringed = mark is not None and p.logical_date == mark
        if not (every or p.broken or ringed or p is points[-1]):
            continue
        py = y(p.value) if p.value is not None else TOP + inner_h  # no value: on the axis
        colour = BROKEN if p.broken else LINE
        radius = 3.6 if p.broken else 2.4
        css = "point broken" if p.broken else "point"
        circle = (f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{radius}" fill="{colour}" class="{css}">'
                  f"<title>{_point_title(p)}</title></circle>")  # fmt: skip
        target = link(p) if link is not None and p.broken else None
        out.append(f'<a href="{esc(target)}">{circle}</a>' if target else circle)
        if ringed:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="7" fill="none" stroke="#000" stroke-width="1.2"/>')
    base = HEIGHT - BOTTOM
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" class="axis-line"/>')
    labels = [(first, "start"), (last, "end")] if first != last else [(first, "middle")]
    if first != last and len(points) > 2:
        middle = first + (last - first) / 2
        if last - first >= datetime.timedelta(days=2):  # a date, not "2026-03-05 12:00"
            middle = middle.replace(hour=0, minute=0, second=0, microsecond=0)
        labels.insert(1, (middle, "middle"))
    for moment, anchor in labels:
        out.append(
            f'<text x="{x(moment):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" class="axis">{esc(day(moment))}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _cell_title(cell) -> str:
    parts = [f"{day(cell.logical_date)}: {LABELS[cell.verdict]}"]
    if cell.failing_rows is not None:
        parts.append(
            f"{cell.failing_rows} failing" + (f" of {cell.total_rows} rows" if cell.total_rows is not None else "")
        )
    if cell.message:
        parts.append(short(cell.message))
    return esc("\n".join(parts))


def check_strip(
    series: CheckSeries, dates: Sequence[datetime.datetime], link: Callable[[CheckResult], str | None] | None = None
) -> str:
    """The SVG strip of one check over ``dates`` (the page's date axis, oldest first): a cell per
    date, blank where the check has no row; consecutive passed dates drawn as one cell; a cell
    that did not pass leads to ``link(cell)`` (its task instance's page) when given."""
    label = f"{series.name} ({series.step_label})"
    width = WIDTH - LEFT - RIGHT
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" viewBox="0 0 {width} {STRIP_HEIGHT}" '
           f'preserveAspectRatio="none" role="img" aria-label="{esc(label)}">',
           f'<rect x="0" y="0" width="{width}" height="{STRIP_HEIGHT}" fill="#eeeeee"/>']  # fmt: skip
    if not dates:
        return out[0] + out[1] + "</svg>"
    slot = width / len(dates)
    position = {moment: i for i, moment in enumerate(dates)}
    by_index = sorted((position[c.logical_date], c) for c in series.cells if c.logical_date in position)
    run: list[tuple[int, object]] = []

    def flush() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        x0, x1 = first[0] * slot, (last[0] + 1) * slot
        title = f"{day(first[1].logical_date)} to {day(last[1].logical_date)}: {len(run)} dates passed"
        out.append(f'<rect x="{x0:.2f}" y="0" width="{max(x1 - x0 - 0.5, 0.8):.2f}" height="{STRIP_HEIGHT}" '
                   f'fill="{COLOURS[PASSED]}"><title>{esc(title)}</title></rect>')  # fmt: skip
        run.clear()

    for index, cell in by_index:
        if cell.verdict == PASSED and (not run or run[-1][0] == index - 1):
            run.append((index, cell))
            continue
        flush()
        if cell.verdict == PASSED:
            run.append((index, cell))
            continue
        rect = (
            f'<rect x="{index * slot:.2f}" y="0" width="{max(slot - 0.5, 0.8):.2f}" height="{STRIP_HEIGHT}" '
            f'fill="{COLOURS[cell.verdict]}" class="cell {cell.verdict}"><title>{_cell_title(cell)}</title></rect>'
        )
        target = link(cell) if link is not None else None
        out.append(f'<a href="{esc(target)}">{rect}</a>' if target else rect)
    flush()
    out.append("</svg>")
    return "".join(out)


def legend() -> str:
    """The strip colours, as a small SVG."""
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="legend" viewBox="0 0 560 16" role="img" aria-label="legend">'
    ]
    x = 0
    for key in (PASSED, WARNING, FAILED, ERROR, OTHER):
        out.append(f'<rect x="{x}" y="3" width="10" height="10" fill="{COLOURS[key]}"/>')
        out.append(f'<text x="{x + 14}" y="12" class="axis">{esc(LABELS[key])}</text>')
        x += 20 + 7 * len(LABELS[key])
    out.append("</svg>")
    return "".join(out)
