"""presets/balanced-teachers.yaml: overrides of real keys, the command in its header applies
exactly them, and the weights docs/methods.md gives for it follow from the loss."""
import pytest
import torch
import yaml

from pipeline.distill.losses import kd_kl
from pipeline.params import validate
from pipeline.presets import apply_overrides, preset_flags
from tests.conftest import REPO

PRESET = REPO / "presets" / "balanced-teachers.yaml"


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


def test_overrides_only_real_keys_and_the_merge_validates():
    overrides = yaml.safe_load(PRESET.read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert _flat(overrides) == {"distill.kd.kl_reduction": "batchmean", "distill.tgd.alpha": 0.7,
                                "distill.tgd.kl_reduction": "batchmean", "distill.tpkd.alpha": 0.7,
                                "distill.tpkd.kl_reduction": "batchmean"}
    assert set(_flat(overrides)) <= set(_flat(params))
    merged = validate(apply_overrides(params, overrides), str(PRESET))
    assert merged.distill.tgd.alpha == merged.distill.tpkd.alpha == 0.7
    assert merged.distill.kd.kl_reduction == merged.distill.tgd.kl_reduction == "batchmean"


def test_header_command_applies_the_preset_through_the_printer():
    header = PRESET.read_text()
    command = next(line for line in header.splitlines() if "dvc exp run" in line)
    assert "$(python -m pipeline.presets presets/balanced-teachers.yaml)" in command
    flags = preset_flags(PRESET, REPO / "params.yaml")
    sets = dict(flag.split("=", 1) for flag in flags[1::2])
    assert {k: yaml.safe_load(v) for k, v in sets.items()} == _flat(yaml.safe_load(header))


@pytest.mark.parametrize("alpha, reduction, w1, w2", [(0.99, "mean", 1.4256, 0.0144),
                                                      (0.7, "batchmean", 10.08, 4.32)])
def test_documented_weights_on_each_teachers_batchmean_kl(alpha, reduction, w1, w2):
    # tgd's KD term is lambda T^2 [alpha KL(z1) + (1 - alpha) KL(z2)] with KL in `reduction`;
    # against the batch-mean KL that is a factor lambda T^2 alpha * KL_reduction / KL_batchmean.
    lam, temperature = 0.9, 4.0
    generator = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(8, 10, generator=generator), torch.randn(8, 10, generator=generator)
    ratio = (kd_kl(zs, zt, temperature, reduction) / kd_kl(zs, zt, temperature, "batchmean")).item()
    assert lam * temperature ** 2 * alpha * ratio == pytest.approx(w1, rel=1e-6)
    assert lam * temperature ** 2 * (1 - alpha) * ratio == pytest.approx(w2, rel=1e-6)
    text = (REPO / "docs" / "methods.md").read_text()
    assert f"= {w2:g}" in text and (f"= {w1:g}" in text)


def test_paper_preset_restores_what_the_default_sizes_down():
    """params.yaml sizes digits and PIs for a two-minute run; the paper preset must bring back
    the TGD recipe's 50x50 persistence images (and overrides only real keys)."""
    overrides = _flat(yaml.safe_load((REPO / "presets" / "paper-cifar10.yaml").read_text()))
    defaults = _flat(yaml.safe_load((REPO / "params.yaml").read_text()))
    assert set(overrides) <= set(defaults)
    assert defaults["topology.image.resolution"] < 50 and overrides["topology.image.resolution"] == 50
    assert overrides["data.name"] == "cifar10"  # digits_size, the other sized-down key, is digits' only
