"""The cubical recipe (topology.image.filtrations: [cubical]): hand-checked diagrams of both engines,
engine fast vs the gudhi reference (random tie-heavy and tiny images, real CIFAR-10), the reference
vs gudhi + persim written out here, channel order, stacking with the sequence recipe, the floor,
params validation."""
from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from tests.cifar_fixtures import CIFAR_TAR
from pipeline.errors import ParamsError
from pipeline.params import validate
from pipeline.topology.params import ImageRecipe
from pipeline.topology import IMAGE_RECIPE
from pipeline.topology import ENGINES, FILTRATIONS, channel_labels, persistence_images
from tests.conftest import tiny_params
from tests.test_topology import closed_form

CUBICAL = dict(filtrations=["cubical"], threshold=0.02, resolution=50, sigma=0.01, cubical_range=[0.0, 1.0],
               normalize=True, min_max=0.0)
TOL = 1e-5
lv = lambda k: k / 255.0  # noqa: E731  (gudhi sees pixel level k as k / 255 in float64)


def pairs(dgm) -> list[tuple[float, float]]:
    return sorted((float(b), float(d)) for b, d in np.asarray(dgm).reshape(-1, 2))


@pytest.fixture(scope="module")
def cifar200():
    if not CIFAR_TAR.exists():
        pytest.skip(f"real CIFAR-10 images need {CIFAR_TAR}, which is missing on this machine")
    from tests.cifar_fixtures import load_cifar_test_images
    return load_cifar_test_images(200, CIFAR_TAR)


@pytest.fixture(scope="module")
def cifar200_reference(cifar200):
    return persistence_images(cifar200, engine="ripser", **CUBICAL)


# ----------------------------------------------------------------------------- (1) diagrams

@pytest.mark.parametrize("engine", ["ripser", "fast"])
@pytest.mark.parametrize("image, h0, h1", [
    # a ring of 0 around a 200: one hole, born when the ring closes, filled at 200
    ([[0, 0, 0], [0, 200, 0], [0, 0, 0]], [], [(0, 200)]),
    # squares touching at a corner are connected (8-connectivity): no finite H0 pair
    ([[0, 200], [200, 0]], [], []),
    ([[10, 200, 10], [200, 10, 200], [10, 200, 10]], [], []),
    # complement pixels touching at a corner are separate holes (4-connectivity)
    ([[0, 0, 0, 0], [0, 50, 0, 0], [0, 0, 90, 0], [0, 0, 0, 0]], [], [(0, 50), (0, 90)]),
    # two basins, the younger dies at the saddle; a border pixel is never a hole
    ([[30, 255, 0, 80]], [(30, 255)], []),
    ([[5, 5], [5, 5]], [], []),                                     # constant
    ([[7]], [], []),                                                # one pixel
    ([[9], [1], [9], [4], [9]], [(4, 9)], []),                     # a column (N x 1)
    # tied births and deaths: two equal basins merge at the same level, a hole with a plateau
    ([[3, 9, 3, 9, 3], [9, 9, 9, 9, 9], [9, 9, 0, 9, 9], [9, 12, 20, 12, 9], [9, 9, 9, 9, 9]],
     [(3, 9), (3, 9), (3, 9)], [(9, 20)]),    # the 0 is the infinite bar
])
def test_diagram_hand_checked(engine, image, h0, h1):
    got0, got1 = ENGINES[engine].cubical_diagrams(np.array([image], np.uint8))[0]
    assert pairs(got0) == sorted((lv(b), lv(d)) for b, d in h0)
    assert pairs(got1) == sorted((lv(b), lv(d)) for b, d in h1)


def test_diagrams_agree_on_tie_heavy_and_tiny_images():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        x = (rng.integers(0, int(rng.integers(1, 6)), (2, h, w)) * int(rng.integers(1, 60))).astype(np.uint8)
        for fast, ref in zip(ENGINES["fast"].cubical_diagrams(x), ENGINES["ripser"].cubical_diagrams(x)):
            assert pairs(fast[0]) == pairs(ref[0]) and pairs(fast[1]) == pairs(ref[1])
            checked += len(ref[1])
    assert checked > 100   # the sample does hold holes


# ----------------------------------------------------------------------------- (2) images

@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_one_hole_pi_is_the_gaussian_integral(engine):
    ring = np.array([[0, 0, 0], [0, 200, 0], [0, 0, 0]], np.uint8)[None, :, :, None]
    pi = persistence_images(ring, engine=engine, **dict(CUBICAL, normalize=False))
    assert pi.shape == (1, 2, 50, 50) and pi.dtype == np.float32
    assert not pi[0, 0].any()                               # H0: only the infinite bar
    want = closed_form(0.0, lv(200), 0.0, 1.0, 50, 0.01)    # H1: (0, 200/255), weight 1
    np.testing.assert_allclose(pi[0, 1], want, atol=1e-9, rtol=1e-5)
    assert np.unravel_index(pi[0, 1].argmax(), (50, 50)) == (0, 39)   # [birth bin, persistence bin]


def test_engines_agree_on_cifar(cifar200, cifar200_reference):
    fast = persistence_images(cifar200, engine="fast", **CUBICAL)
    assert fast.shape == cifar200_reference.shape == (200, 6, 50, 50)
    assert np.abs(fast - cifar200_reference).max() < TOL
    peaks = cifar200_reference.reshape(200 * 6, -1).max(axis=1)
    assert np.isin(peaks, [0.0, 1.0]).all() and (peaks == 1.0).mean() > 0.9
    raw = dict(CUBICAL, normalize=False)
    a = persistence_images(cifar200[:5], engine="ripser", **raw)
    b = persistence_images(cifar200[:5], engine="fast", **raw)
    assert 0 < a.max() and np.abs(a - b).max() < TOL * a.max()


def recipe_by_hand(images: np.ndarray) -> np.ndarray:
    """The cubical recipe written out directly with gudhi and persim: channels [c H0..., c H1...]."""
    import gudhi
    from persim import PersistenceImager

    pim = PersistenceImager(birth_range=(0.0, 1.0), pers_range=(0.0, 1.0), pixel_size=1.0 / 50,
                            weight=lambda b, p: p / p.max(), weight_params={},
                            kernel="gaussian", kernel_params={"sigma": [[0.01 ** 2, 0.0], [0.0, 0.01 ** 2]]})
    n, _, _, c = images.shape
    out = np.zeros((n, 2 * c, 50, 50))
    for i, img in enumerate(images):
        for ch in range(c):
            cc = gudhi.CubicalComplex(top_dimensional_cells=img[:, :, ch] / 255.0)
            cc.persistence(homology_coeff_field=2)
            for dim in (0, 1):
                dgm = np.asarray(cc.persistence_intervals_in_dimension(dim)).reshape(-1, 2)
                dgm = dgm[np.isfinite(dgm[:, 1])]
                dgm = dgm[dgm[:, 1] - dgm[:, 0] > 1e-3]
                dgm = dgm[dgm[:, 1] - dgm[:, 0] > 0.02]
                if len(dgm):
                    pi = pim.transform(dgm, skew=True)
                    out[i, dim * c + ch] = pi / pi.max() if pi.max() > 0 else pi
    return out


def test_reference_matches_gudhi_and_persim_written_out(cifar200, cifar200_reference):
    want = recipe_by_hand(cifar200[:40])
    assert np.abs(cifar200_reference[:40] - want).max() < TOL


def test_engines_agree_on_constant_tied_and_tiny_images():
    rng = np.random.default_rng(1)
    batches = [np.stack([np.full((6, 5, 3), v, np.uint8) for v in (0, 17, 255)]),      # constant
               rng.choice(np.array([0, 20, 40, 90, 200], np.uint8), size=(6, 12, 10, 3)),  # ties
               rng.integers(0, 256, (4, 1, 1, 2), dtype=np.uint8),                       # 1 x 1
               rng.integers(0, 256, (4, 2, 2, 2), dtype=np.uint8),                       # 2 x 2
               rng.integers(0, 256, (4, 1, 17, 2), dtype=np.uint8),                      # 1 x N
               rng.integers(0, 256, (4, 17, 1, 2), dtype=np.uint8)]                      # N x 1
    for x in batches:
        a = persistence_images(x, engine="ripser", **CUBICAL)
        b = persistence_images(x, engine="fast", **CUBICAL)
        assert a.shape == b.shape == (len(x), 2 * x.shape[-1], 50, 50)
        assert np.abs(a - b).max() < TOL
    assert not persistence_images(batches[0], engine="fast", **CUBICAL).any()
    assert persistence_images(batches[1], engine="fast", **CUBICAL)[:, 3:].any()   # ties still give holes


# ----------------------------------------------------------------------------- (3) channels

@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_channel_order_and_stacking(engine):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (2, 9, 7, 3), dtype=np.uint8)
    cub = persistence_images(x, engine=engine, **CUBICAL)
    for c in range(3):
        one = persistence_images(np.ascontiguousarray(x[..., c:c + 1]), engine=engine, **CUBICAL)
        np.testing.assert_array_equal(cub[:, c], one[:, 0])       # [c0 H0, c1 H0, c2 H0,
        np.testing.assert_array_equal(cub[:, 3 + c], one[:, 1])   #  c0 H1, c1 H1, c2 H1]
    seq = persistence_images(x, engine=engine, min_max=0.0)
    both = persistence_images(x, engine=engine, **dict(CUBICAL, filtrations=["sequence", "cubical"]))
    assert both.shape == (2, 12, 50, 50)
    np.testing.assert_array_equal(both, np.concatenate([seq, cub], axis=1))
    flipped = persistence_images(x, engine=engine, **dict(CUBICAL, filtrations=["cubical", "sequence"]))
    np.testing.assert_array_equal(flipped, np.concatenate([cub, seq], axis=1))


def test_channel_labels_follow_the_storage_order():
    recipe = {**IMAGE_RECIPE, "filtrations": ["sequence", "cubical"]}
    assert channel_labels(recipe, 3) == [
        "R, row sequence, H0", "G, row sequence, H0", "B, row sequence, H0",
        "R, column sequence, H0", "G, column sequence, H0", "B, column sequence, H0",
        "R, cubical, H0", "G, cubical, H0", "B, cubical, H0",
        "R, cubical, H1", "G, cubical, H1", "B, cubical, H1"]
    assert channel_labels(dict(recipe, filtrations=["cubical"]), 1) == ["gray, cubical, H0", "gray, cubical, H1"]


@pytest.mark.parametrize("engine", ["ripser", "fast"])
def test_min_max_floor_in_the_cubical_recipe(engine):
    # a narrow window [0, 0.1]: the hole (0, 200/255) lies far outside it, only Gaussian tails remain
    ring = np.array([[0, 0, 0], [0, 200, 0], [0, 0, 0]], np.uint8)[None, :, :, None]
    narrow = dict(CUBICAL, cubical_range=[0.0, 0.1], sigma=0.1)
    raw = persistence_images(ring, engine=engine, **dict(narrow, normalize=False))
    assert 0 < raw[0, 1].max() < 1e-8
    assert persistence_images(ring, engine=engine, **narrow)[0, 1].max() == 1.0
    assert not persistence_images(ring, engine=engine, **dict(narrow, min_max=1e-8)).any()


# ----------------------------------------------------------------------------- (4) params

def test_filtration_names_of_the_schema_are_the_registry():
    names = get_args(ImageRecipe.model_fields["filtrations"].annotation.__args__[0])
    assert set(names) == set(FILTRATIONS)


@pytest.mark.parametrize("key, value, words", [
    ("filtrations", ["sequence", "persistent"], ["topology.image.filtrations.1", "'persistent'", "'cubical'"]),
    ("filtrations", [], ["topology.image.filtrations", "non-empty"]),
    ("filtrations", ["cubical", "cubical"], ["topology.image.filtrations", "distinct"]),
    ("filtrations", "cubical", ["topology.image.filtrations", "list"]),
    ("cubical_range", [1.0, 0.0], ["topology.image.cubical_range", "low < high"]),
    ("cubical_range", [0.0], ["topology.image.cubical_range"]),
    ("cubical_range", [0.0, float("inf")], ["topology.image.cubical_range", "finite"]),
    ("min_max", -1.0, ["topology.image.min_max"]),
])
def test_bad_recipe_fails_at_params_validation_naming_the_key(key, value, words):
    raw = tiny_params()
    raw["topology"]["image"][key] = value
    with pytest.raises(ParamsError) as error:
        validate(raw, "params.yaml")
    assert all(w in str(error.value) for w in words), str(error.value)
    assert "\n" not in str(error.value)


def test_repository_default_is_the_sequence_recipe():
    image = validate(tiny_params()).topology.image
    assert image.filtrations == ["sequence"] and image.orders == ["row", "column"]
    assert image.cubical_range == [0.0, 1.0] and image.min_max == 1e-8


@pytest.mark.parametrize("filtrations", [["sequence"], ["cubical"], ["sequence", "cubical"], ["cubical", "sequence"]])
def test_stage_planned_channels_match_what_the_engine_computes(filtrations):
    """The topology stage sizes its stores without loading the engine (pipeline.topology_stage.pi_shape)."""
    from pipeline.topology import channel_labels, persistence_images
    from pipeline.topology_stage import pi_shape

    recipe = {**IMAGE_RECIPE, "filtrations": filtrations}
    images = np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    computed = persistence_images(images, engine="fast", **recipe).shape[1:]
    assert pi_shape(images.shape, "image", recipe) == computed
    assert len(channel_labels(recipe, 3)) == computed[0]
