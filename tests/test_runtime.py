"""pipeline.runtime: the speed switches change how a model runs, never what it is."""
import copy

import torch

from conftest import tiny_params
from pipeline.inputs import Inputs
from pipeline.models import build_model
from pipeline.training.params import TrainParams
from pipeline.runtime import autocast_bf16, prepare_inputs, prepare_models, set_threads


def _train(**overrides) -> TrainParams:
    return TrainParams.model_validate({**tiny_params()["train"], **overrides})


def test_threads_param_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_threads(_train(threads=1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        set_threads(_train(threads=0))  # 0: leave torch's own setting alone
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_channels_last_pis_keep_their_values_and_layout_through_batching():
    pis = torch.rand(10, 6, 5, 5)
    inputs = Inputs(splits={"train": {"pi": pis.clone(), "x": torch.zeros(10, 4, 4, 3, dtype=torch.uint8)}},
                    classes=["a"], modality="image")
    prepare_inputs(inputs, _train(channels_last=True))
    held = inputs.splits["train"]["pi"]
    assert held.is_contiguous(memory_format=torch.channels_last) and torch.equal(held, pis)
    assert held[torch.tensor([3, 1, 7])].is_contiguous(memory_format=torch.channels_last)
    assert inputs.splits["train"]["x"].is_contiguous()  # raw images are left alone
    off = Inputs(splits={"train": {"pi": pis.clone()}}, classes=["a"], modality="image")
    assert prepare_inputs(off, _train(channels_last=False)).splits["train"]["pi"].is_contiguous()


def test_bf16_autocast_keeps_weights_keys_and_float32_outputs():
    model = build_model("wrn10_1", 3, 5)
    keys = list(model.state_dict())
    seen = []
    model.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    autocast_bf16(model, "cpu")  # the CUDA switch, exercised with CPU autocast
    logits, feats = model(torch.randn(2, 3, 8, 8))
    assert seen == [torch.bfloat16]  # the convolutions ran in bf16 ...
    assert logits.dtype == torch.float32 and all(f.dtype == torch.float32 for f in feats)  # ... losses see fp32
    assert list(model.state_dict()) == keys
    twin = copy.deepcopy(model)  # fit deep-copies the best model: its forward must be its own
    assert twin.forward.__self__ is twin


def test_cuda_switches_leave_cpu_runs_alone():
    model = build_model("wrn10_1", 3, 5)
    x = torch.randn(2, 3, 8, 8)
    before = model(x)[0]
    prepare_models([model], _train(amp=True), torch.device("cpu"))
    assert "forward" not in vars(model)
    assert torch.equal(model(x)[0], before)


def test_maps_of_channels_last_features_equal_the_contiguous_ones():
    from pipeline.distill.losses import correlation_map, flatten, similarity_map

    f = torch.randn(8, 5, 4, 4)
    nhwc = f.contiguous(memory_format=torch.channels_last)
    assert flatten(nhwc).data_ptr() == nhwc.data_ptr()  # a view: no copy per step
    torch.testing.assert_close(similarity_map(nhwc), similarity_map(f))
    torch.testing.assert_close(correlation_map(nhwc), correlation_map(f))
