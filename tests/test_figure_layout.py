"""Every figure of the shipped jobs' tables, drawn and read back through matplotlib's renderer:
no two texts overlap, none leaves the canvas, every axes shows data; and the checker itself
catches each of these."""
import pytest
from matplotlib.figure import Figure

from analysis.figures import FIGURES, Tables, build
from sweeps.cli import main

from . import analysis_fixtures as F
from .figure_layout import problems

# Small real sweeps shaped like the shipped jobs' discrepancy blocks: the paper's (two cells, three
# draws, no exponents) and beyond's (five cells, N(0,1) and gains, with exponents and attractors).
PAPER = ["--cells", "vanilla,gru", "--inits", "normal,xavier,uniform", "--l-max", "20", "--k", "1-4",
         "--draws", "50", "--seeds", "0-1"]
BEYOND = ["--cells", "vanilla,tanh,gru,lstm,mgu", "--inits", "normal,gain:0.5,gain:4", "--l-max", "30",
          "--k", "2,4,8", "--draws", "50", "--lyapunov", "true"]


@pytest.fixture(scope="module")
def job_tables(disc_dir, ray_session, tmp_path_factory):
    """{name: (directory, figures it must draw)}: the fixture tables (a real discrepancy sweep with
    exponents, the training fixtures and the trainability map's), and the paper's and beyond's shapes."""
    out = {}
    for name, args in (("fixtures", None), ("paper", PAPER), ("beyond", BEYOND)):
        d = tmp_path_factory.mktemp(name)
        if args is None:
            F.copy_tables(disc_dir, d, F.DISCREPANCY_TABLES)
        else:
            assert main(["discrepancy", *args, "--out", str(d)]) == 0
        if name != "beyond":
            F.write_training(str(d))
        if name == "fixtures":           # the trainability map's tables; the paper's jobs have none
            F.write_trainability(str(d))
        out[name] = str(d)
    return out


def test_every_figure_is_laid_out_cleanly(job_tables):
    drawn = {}
    for name, out in job_tables.items():
        drawn[name] = {spec.name: fig for spec, fig, _ in build(Tables(out)) if fig is not None}
        found = {fig: problems(f) for fig, f in drawn[name].items()}
        assert not {fig: p for fig, p in found.items() if p}, name
    assert set(drawn["fixtures"]) == {f.name for f in FIGURES}
    assert {"memory_curves", "memory_across_k", "claim4_decay_rates", "discrepancy_frac_distinct"} <= set(drawn["paper"])
    assert {"memory_phase", "memory_decay_vs_lyapunov", "memory_curves", "memory_across_k"} <= set(drawn["beyond"])


def test_the_checker_finds_overlaps_texts_off_the_canvas_and_empty_axes():
    fig = Figure(figsize=(4, 3))
    left, right = fig.subplots(1, 2)
    left.plot([1, 2], [3, 4])
    right.plot([1, 2], [3, 4])
    assert problems(fig) == []
    left.set_xlabel("a long label that runs into the next panel's label")
    right.set_xlabel("another label")
    fig.text(0.9, 0.5, "off the edge of the canvas")
    empty = fig.add_axes((0.4, 0.8, 0.1, 0.1))
    empty.set_title("nothing")
    found = problems(fig)
    assert any("overlap" in p and "another label" in p for p in found), found
    assert any("outside the canvas" in p and "off the edge" in p for p in found), found
    assert any("shows no data" in p and "nothing" in p for p in found), found
    empty.set_axis_off()
    assert not any("shows no data" in p for p in problems(fig))     # a switched-off axes is blank space
