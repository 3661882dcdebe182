"""The worked examples of docs/ARCHITECTURE.md for "add a data set" and "add a topology engine"
(the third, "add a method", is tests/test_add_method.py): each is one registration - a loader
function, an Engine - and params.yaml names it; validation, prepare, the topology stage and the
library functions follow with no other file touched."""
import numpy as np
import pytest

from conftest import tiny_params
from pipeline.data import MODALITY, Dataset, Split, register
from pipeline.data.base import DATASETS
from pipeline.errors import ParamsError
from pipeline.params import section, validate
from pipeline.prepare import prepare
from pipeline.store import read_split, split_path
from pipeline.topology import persistence_images
from pipeline.topology.engine_names import ENGINES
from pipeline.topology.engines import FAST, Engine


@pytest.fixture
def stripes():
    """A data set of 8x8 RGB images, horizontal (class 0) or vertical (class 1) stripes."""
    @register("stripes", modality="image")
    def load_stripes(cfg: dict) -> Dataset:
        rng = np.random.default_rng(cfg["split_seed"])

        def split(n: int) -> Split:
            y = np.arange(n, dtype=np.int64) % 2
            base = (np.arange(8)[:, None] % 2 * 200 + rng.integers(0, 40, (n, 8, 8))).astype(np.uint8)
            x = np.where(y[:, None, None] == 0, base, base.transpose(0, 2, 1))
            return Split(np.repeat(x[..., None], 3, axis=3), y)

        return Dataset("stripes", "image", ["horizontal", "vertical"], {"train": split(40), "test": split(20)})

    yield load_stripes
    DATASETS.unregister("stripes")
    MODALITY.pop("stripes", None)


def test_a_new_data_set_is_one_registered_loader(stripes, tmp_path):
    with pytest.raises(ParamsError, match="unknown data set 'stripes'"):
        DATASETS.unregister("stripes")
        validate(tiny_params(**{"data.name": "stripes"}))
    register("stripes", modality="image")(stripes)  # back, as its module's import registers it
    params = validate(tiny_params(**{"data.name": "stripes", "data.limit_train": None,
                                     "data.limit_test": None}))
    summary = prepare(section(params, "data"), tmp_path / "prepared")
    assert summary["splits"]["train"]["n"] == 40 and summary["classes"] == ["horizontal", "vertical"]
    arrays, attrs = read_split(split_path(tmp_path / "prepared", "train"))
    assert arrays["x"].shape == (40, 8, 8, 3) and attrs["modality"] == "image"


@pytest.fixture
def doubled():
    """An engine whose images are the fast engine's times two (then max-normalised again:
    normalize=False shows the difference)."""
    def images(seqs, **kwargs):
        return 2.0 * FAST.images(seqs, **kwargs)

    engine = ENGINES.register("doubled")(Engine("doubled", images, FAST.diagrams, FAST.cubical_images,
                                                FAST.cubical_diagrams, "test: fast x 2"))
    yield engine
    ENGINES.unregister("doubled")


def test_a_new_topology_engine_is_one_registered_engine(doubled, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    recipe = {"resolution": 10, "normalize": False}
    np.testing.assert_allclose(persistence_images(images, engine="doubled", **recipe),
                               2 * persistence_images(images, engine="fast", **recipe), rtol=1e-6)
    params = validate(tiny_params(**{"topology.engine": "doubled"}))
    assert params.topology.engine == "doubled"
    with pytest.raises(ParamsError, match=r"topology.engine='doubledd'.*known: doubled, fast, ripser"):
        validate(tiny_params(**{"topology.engine": "doubledd"}))
