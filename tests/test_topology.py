"""pipeline.topology, sequence recipe: diagrams, the persim grid, engine ripser vs engine fast vs an
independent ripser + persim implementation of the recipe, shapes, channel order, the min_max floor,
errors. (The cubical recipe: tests/test_cubical.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.stats import norm

from tests.cifar_fixtures import CIFAR_TAR   # <repo>/../shared/datasets/cifar10-jpeg.tar.gz
from pipeline.errors import TopologyError
from pipeline.topology import (ENGINES, Engine, image_sequences, make_grid, persistence_images,
                               signal_persistence_images)

# the TGD recipe as published: no min_max floor (tested on its own below)
IMAGE = dict(threshold=0.02, resolution=50, sigma=0.01, birth_range=(0.0, 0.3), pers_range=(0.0, 0.3),
             orders=("row", "column"), normalize=True, min_max=0.0)
SIGNAL = dict(threshold=0.01, resolution=64, sigma=0.015, birth_range=(-1.0, 1.0), pers_range=(-1.0, 1.0),
              normalize=True)
TOL = 1e-5
f32 = lambda v: float(np.float32(v))  # noqa: E731  (ripser computes in float32)


def pairs(dgm) -> list[tuple[float, float]]:
    return sorted((float(b), float(d)) for b, d in np.asarray(dgm).reshape(-1, 2))


@pytest.fixture(scope="module")
def cifar30():
    if not CIFAR_TAR.exists():
        pytest.skip(f"real CIFAR-10 images need {CIFAR_TAR}, which is missing on this machine")
    from tests.cifar_fixtures import load_cifar_test_images
    return load_cifar_test_images(30, CIFAR_TAR)


@pytest.fixture(scope="module")
def cifar30_ripser(cifar30):
    return persistence_images(cifar30, engine="ripser", **IMAGE)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from tests.cifar_fixtures import load_digits_images
    return load_digits_images(40)


# ----------------------------------------------------------------------------- (1) diagrams

@pytest.mark.parametrize("engine", ["ripser", "fast"])
@pytest.mark.parametrize("seq, expected", [
    ([0, 3, 1, 4, 0.5], [(0.5, 4), (1, 3)]),         # two local minima die at the saddles 4 and 3
    ([2, 0, 2, 0, 2], [(0, 2)]),                      # tied minima: one pair (the other is the infinite bar)
    ([1, 1, 1, 0, 0, 3, 0], [(0, 3)]),                # plateaus
    ([0.5, 0.5, 0.5, 0.5], []),                       # constant: only the infinite bar
    ([3, 1, 3, 1, 3, 1, 3], [(1, 3), (1, 3)]),        # ties in births and deaths
    ([0.7], []),                                      # one vertex
    ([0.2, 0.9], []),                                 # monotone
])
def test_diagram_hand_checked_float(engine, seq, expected):
    got = ENGINES[engine].diagrams(np.array([seq], np.float32))[0]
    assert pairs(got) == sorted((f32(b), f32(d)) for b, d in expected)


@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_diagram_hand_checked_uint8(engine):
    # edges in order: 5 (4-5, equal births: no pair), 30 (0-1: none; 1-2: 10 dies), 40 (2-3: none;
    # 3-4: the 5-plateau dies), 200 (5-6: none; 6-7: the lone 5 dies); the 0 is the infinite bar
    got = ENGINES[engine].diagrams(np.array([[0, 30, 10, 40, 5, 5, 200, 5]], np.uint8))[0]
    lv = lambda k: f32(k / 255.0)  # noqa: E731
    assert pairs(got) == sorted([(lv(10), lv(30)), (lv(5), lv(40)), (lv(5), lv(200))])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_diagrams_agree_on_tie_heavy_sequences(dtype):
    rng = np.random.default_rng(0)
    for _ in range(200):
        length, levels = int(rng.integers(1, 80)), int(rng.integers(1, 5))
        s = (rng.integers(0, levels, (2, length)) * int(rng.integers(1, 60))).astype(np.uint8)
        x = s if dtype == np.uint8 else s.astype(np.float32) / 97 - 0.5
        for a, b in zip(ENGINES["fast"].diagrams(x), ENGINES["ripser"].diagrams(x)):
            assert pairs(a) == pairs(b)


# ----------------------------------------------------------------------------- (2) closed form

def closed_form(b: float, p: float, lo: float, hi: float, r: int, sigma: float) -> np.ndarray:
    edges = lo + (hi - lo) / r * np.arange(r + 1)
    kb = np.diff(norm.cdf(edges, loc=b, scale=sigma))
    kp = np.diff(norm.cdf(edges, loc=p, scale=sigma))
    return np.outer(kb, kp)                      # [birth bin, persistence bin]


@pytest.mark.parametrize("engine", ["ripser", "fast"])
@pytest.mark.parametrize("normalize", [False, True])
def test_one_point_signal_pi_is_the_gaussian_integral(engine, normalize):
    # one finite pair (0.1, 0.3): birth 0.1, persistence 0.2; weight p / max p = 1
    sig = np.array([[0.0, 0.3, 0.1, 0.3]], np.float32)[..., None]
    pi = signal_persistence_images(sig, engine=engine, threshold=0.01, resolution=50, sigma=0.01,
                                   birth_range=(0.0, 0.3), pers_range=(0.0, 0.3), normalize=normalize)
    want = closed_form(f32(0.1), f32(0.3) - f32(0.1), 0.0, 0.3, 50, 0.01)
    if normalize:
        want = want / want.max()
    assert pi.shape == (1, 1, 50, 50) and pi.dtype == np.float32
    np.testing.assert_allclose(pi[0, 0], want, atol=1e-6 * want.max(), rtol=1e-5)
    assert np.unravel_index(pi[0, 0].argmax(), (50, 50)) == (16, 33)   # birth 0.1 -> bin 16, pers 0.2 -> bin 33


@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_one_point_image_pi_is_the_gaussian_integral(engine):
    img = np.array([[0, 77, 26, 77]], np.uint8)[None, :, :, None]     # (1, 1, 4, 1): one row
    pi = persistence_images(img, engine=engine, orders=("row",), normalize=False,
                            **{k: v for k, v in IMAGE.items() if k not in ("orders", "normalize")})
    b, d = f32(26 / 255), f32(77 / 255)
    want = closed_form(b, d - b, 0.0, 0.3, 50, 0.01)
    np.testing.assert_allclose(pi[0, 0], want, atol=1e-9, rtol=1e-5)


# ----------------------------------------------------------------------------- (3) ripser vs fast

def test_engines_agree_on_cifar(cifar30, cifar30_ripser):
    fast = persistence_images(cifar30, engine="fast", **IMAGE)
    assert fast.shape == cifar30_ripser.shape == (30, 6, 50, 50)
    assert np.abs(fast - cifar30_ripser).max() < TOL
    assert (cifar30_ripser.reshape(30 * 6, -1).max(axis=1) == 1.0).all()   # normalised, none empty
    raw = dict(IMAGE, normalize=False)
    a = persistence_images(cifar30[:3], engine="ripser", **raw)
    b = persistence_images(cifar30[:3], engine="fast", **raw)
    assert 0 < a.max() < 1 and np.abs(a - b).max() < TOL * a.max()


def test_engines_agree_on_digits(digits):
    assert digits.shape == (40, 32, 32, 1)
    a = persistence_images(digits, engine="ripser", **IMAGE)
    b = persistence_images(digits, engine="fast", **IMAGE)
    assert a.shape == (40, 2, 50, 50)
    assert np.abs(a - b).max() < TOL
    assert a.max() == 1.0


@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_constant_images_give_zero_pis(engine):
    x = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 17, 255)])
    pi = persistence_images(x, engine=engine, **IMAGE)
    assert pi.shape == (3, 6, 50, 50) and not pi.any()


def test_engines_agree_on_tie_heavy_images_and_one_channel():
    rng = np.random.default_rng(1)
    x = rng.choice(np.array([0, 20, 40, 60, 90], np.uint8), size=(6, 12, 10, 1))
    a = persistence_images(x, engine="ripser", **IMAGE)
    b = persistence_images(x, engine="fast", **IMAGE)
    assert a.shape == (6, 2, 50, 50) and a.any()
    assert np.abs(a - b).max() < TOL


def test_engines_agree_on_signals():
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(size=(10, 100, 6)), axis=1)
    lo, hi = walk.min(axis=1, keepdims=True), walk.max(axis=1, keepdims=True)
    x = (2 * (walk - lo) / (hi - lo) - 1).astype(np.float32)
    x[:, 40:60, 2] = np.round(x[:, 40:60, 2], 1)        # ties and plateaus
    x[3, :, 4] = 0.25                                    # a constant channel -> zero PI
    a = signal_persistence_images(x, engine="ripser", **SIGNAL)
    b = signal_persistence_images(x, engine="fast", **SIGNAL)
    assert a.shape == (10, 6, 64, 64) and a.dtype == b.dtype == np.float32
    assert not a[3, 4].any() and a[0, 0].max() == 1.0
    assert np.abs(a - b).max() < TOL


def test_engines_agree_off_default_grid_with_persim_off_by_one():
    # persim's int(width / pixel_size) gives 26 for [0, 0.3] with 27 pixels; make_grid nudges the range
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (3, 9, 9, 2), dtype=np.uint8)
    kw = dict(IMAGE, resolution=27, sigma=0.02, threshold=0.05)
    a = persistence_images(x, engine="ripser", **kw)
    b = persistence_images(x, engine="fast", **kw)
    assert a.shape == (3, 4, 27, 27)
    assert np.abs(a - b).max() < TOL


def test_grid_matches_persim():
    from persim import PersistenceImager
    for lo, hi, r in [(0.0, 0.3, 50), (-1.0, 1.0, 64), (0.0, 0.3, 27), (-1.0, 1.0, 93)]:
        g = make_grid((lo, hi), (lo, hi), r, 0.01)
        pim = PersistenceImager(birth_range=g.birth_range, pers_range=g.pers_range, pixel_size=g.pixel_size)
        assert pim.resolution == (r, r)
        np.testing.assert_array_equal(g.birth_edges, pim._bpnts)
        np.testing.assert_array_equal(g.pers_edges, pim._ppnts)
        np.testing.assert_allclose(g.birth_edges, np.linspace(lo, hi, r + 1), atol=1e-14)


# ----------------------------------------------------------------------------- (4) independent recipe

def recipe_by_hand(images: np.ndarray) -> np.ndarray:
    """The TGD recipe (docs/topology.md) written out directly with ripser and persim."""
    from persim import PersistenceImager
    from ripser import ripser

    pim = PersistenceImager(birth_range=(0.0, 0.3), pers_range=(0.0, 0.3), pixel_size=0.3 / 50,
                            weight=lambda b, p: p / p.max(), weight_params={},
                            kernel="gaussian", kernel_params={"sigma": [[0.01 ** 2, 0.0], [0.0, 0.01 ** 2]]})
    out = np.zeros((len(images), 6, 50, 50))
    for n, img in enumerate(images):
        for o, order in enumerate(("row", "column")):
            for c in range(3):
                ch = img[:, :, c] / 255.0
                x = (ch if order == "row" else ch.T).flatten()
                m = len(x)
                d = sparse.coo_matrix(
                    (np.r_[x, np.maximum(x[:-1], x[1:])], (np.r_[0:m, 0:m - 1], np.r_[0:m, 1:m])), shape=(m, m))
                dgm = ripser(d, maxdim=0, distance_matrix=True)["dgms"][0]
                dgm = dgm[np.isfinite(dgm[:, 1])]
                dgm = dgm[dgm[:, 1] - dgm[:, 0] > 1e-3]
                dgm = dgm[dgm[:, 1] - dgm[:, 0] > 0.02]
                if len(dgm):
                    pi = pim.transform(dgm, skew=True)
                    out[n, o * 3 + c] = pi / pi.max() if pi.max() > 0 else pi
    return out


def test_persistence_images_match_an_independent_implementation(cifar30, cifar30_ripser):
    want = recipe_by_hand(cifar30)
    assert np.abs(cifar30_ripser - want).max() < TOL
    assert np.abs(persistence_images(cifar30, engine="fast", **IMAGE) - want).max() < TOL


# ----------------------------------------------------------------------------- (5) shapes, order

@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_channel_order_and_real_transpose(engine):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (2, 10, 7, 3), dtype=np.uint8)    # non-square, non-symmetric
    pi = persistence_images(x, engine=engine, **IMAGE)
    assert pi.shape == (2, 6, 50, 50) and pi.dtype == np.float32
    for c in range(3):
        one = dict(IMAGE, orders=("row",))
        row = persistence_images(np.ascontiguousarray(x[..., c:c + 1]), engine=engine, **one)
        col = persistence_images(np.ascontiguousarray(x[..., c:c + 1].transpose(0, 2, 1, 3)), engine=engine, **one)
        np.testing.assert_array_equal(pi[:, c], row[:, 0])          # [c0 row, c1 row, c2 row, ...
        np.testing.assert_array_equal(pi[:, 3 + c], col[:, 0])      #  ..., c0 column, c1 column, c2 column]
        assert np.abs(pi[:, c] - pi[:, 3 + c]).max() > 0.01          # column is not a copy of row
    only_col = persistence_images(x, engine=engine, **dict(IMAGE, orders=["column"]))
    np.testing.assert_array_equal(only_col, pi[:, 3:])


def test_sequences_layout():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.uint8).reshape(2, 3, 4, 2)
    s = image_sequences(x, ("row", "column"))
    assert s.shape == (2, 4, 12)
    np.testing.assert_array_equal(s[1, 1], x[1, :, :, 1].ravel())
    np.testing.assert_array_equal(s[1, 3], x[1, :, :, 1].T.ravel())


def test_lists_defaults_and_empty_batch():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    kw = dict(IMAGE, birth_range=[0.0, 0.3], pers_range=[0.0, 0.3], orders=["row", "column"])
    pis = persistence_images(x, engine="fast", **kw)
    # omitted keys take the params schema's defaults: the TGD recipe with the min_max floor
    np.testing.assert_array_equal(persistence_images(x, engine="fast", min_max=0.0), pis)
    assert persistence_images(x[:0], engine="fast", **kw).shape == (0, 6, 50, 50)
    assert signal_persistence_images(np.zeros((0, 10, 2), np.float32), engine="fast").shape == (0, 2, 64, 64)
    # float64 signals are rounded to float32, as ripser does anyway
    s = rng.uniform(-1, 1, (2, 30, 2))
    np.testing.assert_array_equal(signal_persistence_images(s, engine="fast"),
                                  signal_persistence_images(s.astype(np.float32), engine="fast"))


@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_min_max_floor_zeroes_only_near_empty_pis(engine):
    # one row each: [0, 95, 0] has the single pair (0, 95/255 = 0.37), outside the [0, 0.3]
    # window, so its PI holds only Gaussian tails; [0, 40, 0] has (0, 0.16), inside the window
    x = np.array([[0, 95, 0], [0, 40, 0]], np.uint8)[:, None, :, None]      # (2, 1, 3, 1)
    kw = dict(IMAGE, orders=("row",))
    raw = persistence_images(x, engine=engine, **dict(kw, normalize=False))
    assert 0 < raw[0].max() < 1e-8 < raw[1].max()
    unfloored = persistence_images(x, engine=engine, **kw)
    assert unfloored[0].max() == 1.0                     # rounding noise blown up to full brightness
    floored = persistence_images(x, engine=engine, **dict(kw, min_max=1e-8))
    assert not floored[0].any()
    np.testing.assert_array_equal(floored[1], unfloored[1])
    assert not persistence_images(x, engine=engine, **dict(kw, min_max=1e-8, normalize=False))[0].any()
    assert persistence_images(x, engine=engine, **dict(kw, min_max=1e-14))[0].max() == 1.0  # 4.5e-14 passes


# ----------------------------------------------------------------------------- (6) errors

def test_unknown_engine_names_it_and_lists_known():
    with pytest.raises(TopologyError, match=r"'gudhi'.*fast, ripser"):
        persistence_images(np.zeros((1, 4, 4, 1), np.uint8), engine="gudhi")


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 4, 4, 1), np.float32), "uint8"),
    (np.zeros((4, 4, 1), np.uint8), r"\(N, H, W, C\)"),
    ([[[[0]]]], "uint8"),
    (np.zeros((1, 0, 4, 1), np.uint8), "H, W, C >= 1"),
])
def test_bad_images(bad, match):
    with pytest.raises(TopologyError, match=match):
        persistence_images(bad, engine="fast")


@pytest.mark.parametrize("kw, match", [     # validated by the params schema, named as in params.yaml
    (dict(orders=("row", "diagonal")), r"topology\.image\.orders\.1='diagonal'.*'row' or 'column'"),
    (dict(orders=()), r"topology\.image\.orders.*non-empty"),
    (dict(resolution=0), r"topology\.image\.resolution=0"),
    (dict(resolution=2.5), r"topology\.image\.resolution=2\.5"),
    (dict(sigma=0), r"topology\.image\.sigma=0"),
    (dict(threshold=-1), r"topology\.image\.threshold=-1"),
    (dict(birth_range=(0.3, 0.0)), r"topology\.image\.birth_range.*low < high"),
    (dict(pers_range=(0.0,)), r"topology\.image\.pers_range"),
    (dict(pers_range=(0.0, 0.5)), "same width"),
    (dict(normalize="maybe"), r"topology\.image\.normalize='maybe'"),
    (dict(min_max=-1e-8), r"topology\.image\.min_max"),
    (dict(n_jobs=2), r"topology\.image\.n_jobs: unknown key"),
])
def test_bad_recipe(kw, match):
    with pytest.raises(TopologyError, match=match):
        persistence_images(np.zeros((1, 4, 4, 1), np.uint8), engine="fast", **kw)


def test_bad_signals():
    with pytest.raises(TopologyError, match=r"float32 array of shape \(N, L, C\)"):
        signal_persistence_images(np.zeros((2, 10, 3), np.int64))
    with pytest.raises(TopologyError, match=r"\(N, L, C\)"):
        signal_persistence_images(np.zeros((10, 3), np.float32))
    x = np.zeros((3, 10, 2), np.float32)
    x[1, 4, 1] = np.nan
    with pytest.raises(TopologyError, match=r"NaN or inf in samples \[1\]"):
        signal_persistence_images(x, engine="fast")


def test_bad_signal_recipe_is_named():
    with pytest.raises(TopologyError, match=r"topology\.signal\.sigma=-1"):
        signal_persistence_images(np.zeros((1, 10, 2), np.float32), engine="fast", sigma=-1)


def test_non_finite_output_is_an_error(monkeypatch):
    def nan_images(seqs, *, grid, threshold, normalize, min_max):
        out = np.zeros((len(seqs), grid.resolution, grid.resolution))
        out[-1, 0, 0] = np.nan
        return out

    monkeypatch.setitem(ENGINES, "broken", Engine("broken", nan_images, lambda s: [], None, None, "test"))
    with pytest.raises(TopologyError, match=r"'broken'.*NaN or inf.*samples \[1\]"):
        persistence_images(np.zeros((2, 4, 4, 1), np.uint8), engine="broken")


def test_signal_benchmark_runs_both_engines_on_basicmotions():
    pytest.importorskip("aeon")
    from benchmarks.topology_engines import run_topology_signals

    result = run_topology_signals(repeat=1)
    assert result["n"] == 80 and result["max_abs_diff"] < 1e-5
    assert result["ripser_ms"] > 0 and result["fast_ms"] > 0 and result["ratio"] > 0
