"""Layout problems of a drawn figure, read from matplotlib's renderer: overlapping texts, texts
outside the canvas, axes without data."""
from itertools import combinations
from typing import List

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

DPI = 110          # as analysis.figures writes the PNGs
SLACK = 1.0        # pixels: boxes that merely touch do not overlap


def _in_view(axis, tick) -> bool:
    """Whether the tick lies in the axis' view, compared on the axis' scale (log axes span decades)."""
    scale = axis.get_transform()
    lo, hi = sorted(scale.transform(np.asarray(axis.get_view_interval(), float)))
    at = float(scale.transform(np.array([tick.get_loc()], float))[0])
    pad = 1e-9 * (hi - lo)
    return lo - pad <= at <= hi + pad


def texts(fig: Figure) -> List[Text]:
    """Every text the figure draws: titles, labels, legends, annotations, figure texts, and the tick
    labels of ticks inside the view (the ones matplotlib draws)."""
    ticks, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks.update(id(t) for tick in [*axis.majorTicks, *axis.minorTicks] for t in (tick.label1, tick.label2))
            # the ticks this draw used (the lists keep spares from earlier draws, with stale labels)
            used = [*axis.get_major_ticks(len(axis.get_majorticklocs())),
                    *axis.get_minor_ticks(len(axis.get_minorticklocs()))]
            drawn += [t for tick in used if _in_view(axis, tick) and tick.get_visible() for t in (tick.label1, tick.label2)]
    drawn += [t for t in fig.findobj(Text) if id(t) not in ticks]
    return [t for t in drawn if t.get_visible() and t.get_text().strip() and _shown(t)]


def _shown(artist) -> bool:
    """The artist and every parent that can hide it (its axes, its legend) are visible."""
    ax = artist.axes
    return ax is None or (ax.get_visible() and (ax.axison or artist in ax.texts or artist is ax.title))


def _has_data(artist) -> bool:
    if isinstance(artist, Line2D):
        x, y = (np.asarray(v, float) for v in artist.get_data())
        return bool((np.isfinite(x) & np.isfinite(y)).any())
    if isinstance(artist, AxesImage):
        return np.asarray(artist.get_array()).size > 0
    if isinstance(artist, Collection):
        return len(artist.get_offsets()) > 0 or len(artist.get_paths()) > 0
    return isinstance(artist, Patch)


def problems(fig: Figure) -> List[str]:
    """What is wrong with the layout of ``fig``, each in one line (empty when nothing is)."""
    FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    boxes = [(t, t.get_window_extent(renderer)) for t in texts(fig)]
    out = []
    for t, b in boxes:
        if b.x0 < -SLACK or b.y0 < -SLACK or b.x1 > width + SLACK or b.y1 > height + SLACK:
            out.append(f"text {t.get_text()!r} lies outside the canvas ({b.x0:.0f}, {b.y0:.0f}, {b.x1:.0f}, "
                       f"{b.y1:.0f} in {width} x {height})")
    for (s, a), (t, b) in combinations(boxes, 2):
        w, h = min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0)
        if w > SLACK and h > SLACK:
            out.append(f"texts {s.get_text()!r} and {t.get_text()!r} overlap ({w:.0f} x {h:.0f} px)")
    for i, ax in enumerate(fig.axes):
        if ax.get_visible() and ax.axison and not any(_has_data(a) for a in ax.get_children() if a is not ax.patch
                                                      and a.get_visible() and not _is_frame(ax, a)):
            out.append(f"axes {i} ({ax.get_title()!r}) shows no data")
    return out


def _is_frame(ax, artist) -> bool:
    """The axes' own furniture (spines, axis lines, the background), which is not data."""
    return artist in ax.spines.values() or artist in (ax.xaxis, ax.yaxis) or artist is ax.patch
