"""Every figure reads offline and says what it shows: the per-epoch series as PNGs beside their
CSVs, titles that name the data set (not its loader) and fit their figure, counted nouns in the
singular for one, and persistence images each on its own colour scale."""
import csv

import numpy as np
import pytest

from conftest import tiny_params
from pipeline import evaluation as E
from pipeline import figures, layout
from pipeline.data import DATASETS
from pipeline.params import validate
from pipeline.titles import DISPLAY_NAMES, FOLDER_LOADERS, count, dataset_title, wrap_title
from pipeline.topology_figure import figure as topology_figure
from tests.test_evaluation import RESULTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, root, title", [
    ("cifar10", "raw/cifar", "CIFAR-10"),
    ("cinic10", None, "CINIC-10"),
    ("tinyimagenet", "raw/tiny-imagenet-200", "Tiny ImageNet"),
    ("basicmotions", None, "BasicMotions"),
    ("pamap2", "raw/PAMAP2_Dataset", "PAMAP2"),
    ("digits", None, "digits (scikit-learn)"),
    ("windows", "raw/gestures/", "gestures"),
    ("windows", None, "windows"),
    ("imagefolder", "raw/cifar10-jpeg", "CIFAR-10"),      # CIFAR-10 written out as a JPEG tree
    ("imagefolder", "s3://bucket/CIFAR-10/", "CIFAR-10"),
    ("imagefolder", "raw/cifar_10", "CIFAR-10"),
    ("imagefolder", "raw/cifar100", "cifar100"),           # not CIFAR-10
    ("imagefolder", "raw/CINIC-10-png", "CINIC-10"),
    ("imagefolder", "raw/flowers", "flowers"),
    ("imagefolder", "C:\\data\\flowers\\", "flowers"),
    ("imagefolder", ".", "imagefolder"),
    ("imagefolder", None, "imagefolder"),
])
def test_display_names(name, root, title):
    assert dataset_title(name, root) == title


def test_every_data_set_has_a_display_name_or_a_folder():
    assert set(DATASETS.names()) <= set(DISPLAY_NAMES) | set(FOLDER_LOADERS)


def test_counts_are_singular_for_one():
    assert [count(1, "epoch"), count(5, "epoch"), count(1, "class"), count(10, "class"),
            count(0, "seed"), count(1, "test sample")] == [
        "1 epoch", "5 epochs", "1 class", "10 classes", "0 seeds", "1 test sample"]


def test_wrapped_titles_fit_and_keep_no_break_spaces():
    text = "Persistence images of test samples, CIFAR-10\nx: birth over " + "[0,\u00a01]\u00a0x\u00a0[0,\u00a01], " * 6
    lines = wrap_title(text, 4.0, 9).split("\n")
    assert len(lines) > 2 and lines[0] == "Persistence images of test samples, CIFAR-10"
    assert all(len(line) <= 4.0 * 72 / (0.58 * 9) for line in lines)
    assert not any(line.endswith("[0,") for line in lines)


def _inside(fig) -> bool:
    """The figure's suptitle lies within the figure (not cut on either side)."""
    fig.canvas.draw()
    box = next(t for t in fig.texts if t.get_text() == fig.get_suptitle()).get_window_extent()
    return 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_curves_are_pngs_and_an_empty_chart_says_why(tmp_path):
    accuracy = {"scratch": [(1, 40.0), (2, 55.5)], "kd": [(1, 45.0)], "tgd": []}
    path = figures.plot_curves({"": accuracy}, tmp_path / "a" / "acc.png", "t", "accuracy (%)")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    shares = {"tgd": {"group 1": [(1, 0.1)], "group 3": [(1, 0.2), (2, 0.3)]}, "kd": {}}
    path = figures.plot_curves(shares, tmp_path / "share.png", "t", "share")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    path = figures.plot_curves({"kd": {}}, tmp_path / "none.png", "t", "share", empty="no two-teacher method")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 3_000


def _live(root, model, metric, values):
    folder = root / layout.live_dir(model) / "plots" / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{1000 + i}\t{i}\t{v}\n" for i, v in enumerate(values))
    (folder / f"{metric}.tsv").write_text(f"timestamp\tstep\t{metric}\n{rows}")


def _spy(monkeypatch):
    titles = {}
    real = figures.plot_curves

    def plot_curves(panels, path, title, *args, **kwargs):
        titles[path.name] = (title, {name: dict(series) for name, series in panels.items()})
        return real(panels, path, title, *args, **kwargs)

    monkeypatch.setattr(figures, "plot_curves", plot_curves)
    return titles


def test_the_evaluate_stage_draws_its_series_as_pngs(tmp_path, monkeypatch):
    """The CIFAR-10 JPEG tree (imagefolder) is titled CIFAR-10; the PNGs draw the CSVs' series;
    teacher 2's share is drawn for tgd and tpkd, one panel each."""
    monkeypatch.chdir(tmp_path)
    titles = _spy(monkeypatch)
    _live(tmp_path, "scratch", "scratch_acc", [50.0])
    _live(tmp_path, "tgd", "tgd_acc", [60.0])
    _live(tmp_path, "tgd", "tgd_share_g1", [0.25])
    _live(tmp_path, "tpkd", "tpkd_share_g2", [0.5, 0.4])
    params = validate(tiny_params(**{"distill.methods": ["kd", "tgd", "tpkd"], "data.name": "imagefolder",
                                     "data.root": "raw/cifar10-jpeg"}))
    E.write_plot_tables(params)
    for png in ("test_accuracy.png", "teacher2_share.png"):
        assert (layout.EVALUATE_PLOTS / png).read_bytes()[:8] == PNG_MAGIC
    title, panels = titles["test_accuracy.png"]
    assert title == "Test accuracy per epoch, every model (CIFAR-10, seed 0, 1 epoch)"
    with open(layout.EVALUATE_PLOTS / "test_accuracy.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert rows == [[str(e), m, f"{v:g}"] for m, points in panels[""].items() for e, v in points]
    title, panels = titles["teacher2_share.png"]
    assert "(CIFAR-10, seed 0)" in title and "imagefolder" not in title
    assert "teacher 2 (topology)" in title
    assert panels == {"kd": {}, "tgd": {"group 1": [(1, 0.25)]}, "tpkd": {"group 2": [(1, 0.5), (2, 0.4)]}}
    E.write_plot_tables(validate(tiny_params(**{"distill.methods": ["tgd"],
                                                "models.teacher_topology_input": "x"})))
    assert "teacher 2 (raw images)" in titles["teacher2_share.png"][0]   # the two-raw-teachers control
    assert "CIFAR-10" in E.dataset_seed(params) and "(loader `imagefolder`, 10 classes, 1 test sample)" in \
        E.markdown_report([{**r, "n": 1} for r in RESULTS], params, 10, [])


def test_without_a_two_teacher_method_the_share_figure_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    titles = _spy(monkeypatch)
    E.write_plot_tables(validate(tiny_params(**{"distill.methods": ["kd"]})))
    assert (layout.EVALUATE_PLOTS / "teacher2_share.png").read_bytes()[:8] == PNG_MAGIC
    assert (layout.EVALUATE_PLOTS / "test_accuracy.png").read_bytes()[:8] == PNG_MAGIC
    assert titles["teacher2_share.png"][1] == {"kd": {}}
    assert "digits (scikit-learn), seed 0, 0 epochs" in titles["test_accuracy.png"][0]


def test_each_persistence_image_is_scaled_to_its_own_range_and_the_title_fits():
    """The digits recipe (two sequence channels: the narrowest figure) and a cubical one: every PI
    panel's colour limits are its own minimum and maximum; the title names the data set, says
    so, and lies inside the figure."""
    recipe = validate(tiny_params()).topology.image.model_dump()
    rng = np.random.default_rng(0)
    for titles in (["gray, row sequence, H0", "gray, column sequence, H0"],
                   ["gray, row sequence, H0", "gray, cubical, H0", "gray, cubical, H1"]):
        k = len(titles)
        pis = rng.uniform(size=(2, k, 16, 16)) * rng.uniform(0.01, 1.0, size=(2, k, 1, 1))
        pis[1, 0] = 0.0   # an empty PI
        fig = topology_figure(rng.integers(0, 255, size=(2, 16, 16, 1), dtype=np.uint8), pis, titles,
                              ["0 (#3)", "1 (#0)"], recipe, "image", dataset="CIFAR-10")
        assert _inside(fig)
        suptitle = fig.get_suptitle().replace("\n", " ")
        assert "CIFAR-10" in suptitle and "Each panel scaled to its own maximum" in suptitle
        axes = np.asarray(fig.axes).reshape(2, k + 1)
        for row in range(2):
            for col in range(k):
                pi, (image,) = pis[row, col], axes[row, col + 1].get_images()
                lo, hi = image.get_clim()
                assert lo == pytest.approx(pi.min())
                assert hi == pytest.approx(pi.max()) if pi.max() > pi.min() else hi > lo


def test_evaluate_titles_fit_their_figures(tmp_path, monkeypatch):
    """The widest titles on the narrowest figures (one student, one panel) stay inside them."""
    drawn = {}
    save = figures._save

    def keep(fig, path):
        drawn[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    where = "test split of digits (scikit-learn), seed 0, last checkpoints"
    figures.plot_students([{**RESULTS[2], "model": "scratch"}], tmp_path / "s.png",
                          f"Students: accuracy clean and under Gaussian input noise, and ECE ({where})")
    figures.plot_curves({"tgd": {"group 1": [(1, 0.1)]}}, tmp_path / "c.png",
                        f"Share of teacher 2 (topology) in the merged similarity maps, per group and epoch "
                        f"({where})", "share")
    assert all(_inside(fig) for fig in drawn.values()) and len(drawn) == 2
