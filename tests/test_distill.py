"""Distillation losses against hand-computed values, the Method contract and the registry."""

import math

import pytest
import torch
from torch import nn

from pipeline.distill import METHODS, Method, build_method
from pipeline.distill.logit_losses import averaged_kd_kl, dkd_parts
from pipeline.distill.losses import (correlation_map, kd_kl, merged_similarity_loss, orth_loss,
                                     rownorm, similarity_map, similarity_maps, sp_loss)
from pipeline.errors import ParamsError
from pipeline.models import build_model
from pipeline.schema import fields_of

CFG = {"methods": ["kd", "sp", "tgd", "tpkd"], "lambda": 0.9, "temperature": 4.0, "alpha": 0.7,
       "gamma": 1000.0, "beta": 200.0, "anneal": True, "kl_reduction": "batchmean",
       "ce_weight": 1.0, "warmup": 20}
ALL = ["kd", "sp", "tgd", "tpkd", "tgd_t1", "aver", "dkd"]
ONE_TEACHER = {"kd", "sp", "tgd_t1", "dkd"}


def build(name, student, teachers, cfg, **kwargs):
    """build_method with the method's block `distill.<name>` cut from a flat dict of keys."""
    model = METHODS[name].params_model if name in METHODS else None
    block = None if model is None else {k: cfg[k] for k in fields_of(model) if k in cfg}
    return build_method(name, student, teachers, block, **kwargs)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------------- pure losses
def _softmax(row, T):
    e = [math.exp(v / T) for v in row]
    return [v / sum(e) for v in e]


def _hand_kl(zs, zt, T):
    """sum over batch and classes of p_t (log p_t - log p_s)."""
    total = 0.0
    for rs, rt in zip(zs, zt):
        ps, pt = _softmax(rs, T), _softmax(rt, T)
        total += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps))
    return total


def test_kd_kl_matches_hand_computation_both_reductions():
    zs = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    zt = [[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]]
    T = 2.0
    total = _hand_kl(zs, zt, T)
    got_bm = kd_kl(torch.tensor(zs), torch.tensor(zt), T, "batchmean")
    got_m = kd_kl(torch.tensor(zs), torch.tensor(zt), T, "mean")
    assert got_bm.item() == pytest.approx(total / 2, rel=1e-5)
    assert got_m.item() == pytest.approx(total / (2 * 3), rel=1e-5)
    assert kd_kl(torch.tensor(zt), torch.tensor(zt), T).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError):
        kd_kl(torch.tensor(zs), torch.tensor(zt), T, "sum")


def test_similarity_map_and_rownorm_by_hand():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]).reshape(3, 2, 1, 1)
    g = similarity_map(f)
    torch.testing.assert_close(g, torch.tensor([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]]))
    r = rownorm(g)
    s2, s20, s9 = math.sqrt(2), math.sqrt(20), 3.0
    torch.testing.assert_close(r, torch.tensor([[1 / s2, 0, 1 / s2], [0, 4 / s20, 2 / s20],
                                                [1 / s9, 2 / s9, 2 / s9]]))


def _tiny_feats():
    # B = 2; teacher 2's features have another shape (another "spatial size"): G is B x B anyway
    fs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(2, 1, 2)          # Gs = I
    f1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]]).reshape(2, 2, 1, 1)       # G1 = [[2,2],[2,2]]
    f2 = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).reshape(2, 3)   # G2 = [[4,0],[0,0]]
    return fs, f1, f2


def _hand_merged_sim(alpha):
    m = [[2 * alpha + 4 * (1 - alpha), 2 * alpha], [2 * alpha, 2 * alpha]]
    n = [math.hypot(*row) for row in m]
    mn = [[v / n[i] for v in row] for i, row in enumerate(m)]
    gs = [[1.0, 0.0], [0.0, 1.0]]
    return sum((gs[i][j] - mn[i][j]) ** 2 for i in range(2) for j in range(2)) / 4


def test_merged_similarity_loss_by_hand():
    fs, f1, f2 = _tiny_feats()
    # alpha = 0.5: merged [[3,1],[1,1]] -> rows /sqrt(10), /sqrt(2)
    expected = ((1 - 3 / math.sqrt(10)) ** 2 + 1 / 10 + 1 / 2 + (1 - 1 / math.sqrt(2)) ** 2) / 4
    assert _hand_merged_sim(0.5) == pytest.approx(expected)
    got = merged_similarity_loss([fs], [f1], [f2], 0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # three groups sum; merged RAW maps differ from merging normalised maps
    got3 = merged_similarity_loss([fs] * 3, [f1] * 3, [f2] * 3, 0.3)
    assert got3.item() == pytest.approx(3 * _hand_merged_sim(0.3), rel=1e-6)
    # alpha = 1 is SP against teacher 1 alone
    sp = sp_loss(similarity_maps([fs]), similarity_maps([f1]))
    assert merged_similarity_loss([fs], [f1], [f2], 1.0).item() == pytest.approx(sp.item())


def test_correlation_map_by_hand_and_invariances():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    c = correlation_map(f)
    r = -1 / math.sqrt(10)
    torch.testing.assert_close(c, torch.tensor([[1.0, -0.8, r], [-0.8, 1.0, r], [r, r, 1.0]]))
    x = torch.randn(6, 5)
    q, _ = torch.linalg.qr(torch.randn(5, 5))
    torch.testing.assert_close(correlation_map(3.0 * x @ q), correlation_map(x))


def test_orth_loss_properties():
    fs = [torch.randn(6, 4, 3, 3), torch.randn(6, 8, 2)]
    f1 = [torch.randn(6, 12, 3, 3), torch.randn(6, 24, 2, 2)]
    f2 = [torch.randn(6, 5, 5, 5), torch.randn(6, 7)]
    assert orth_loss(f1, f1, f1, 0.7).item() == pytest.approx(0.0, abs=1e-10)
    assert orth_loss(fs, f1, f2, 0.7).item() > 0
    # alpha = 1 ignores teacher 2; equals SP on correlation maps
    cs = [correlation_map(f) for f in fs]
    c1 = [correlation_map(f) for f in f1]
    assert orth_loss(fs, f1, f2, 1.0).item() == pytest.approx(sp_loss(cs, c1).item(), rel=1e-6)


# ------------------------------------------------------------------ tiny deterministic networks
class Stub(nn.Module):
    """Returns fixed logits and features (scaled by a learnable scalar so gradients exist)."""

    def __init__(self, logits, feats):
        super().__init__()
        self.logits, self.feats = logits, feats
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * self.logits, [self.w * f for f in self.feats]


def _hand_ce(z, y):
    return sum(-math.log(_softmax(row, 1.0)[c]) for row, c in zip(z, y)) / len(y)


def test_tgd_total_equals_hand_computed_parts():
    zs = [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]
    z1 = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
    z2 = [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    y = [0, 2]
    fs, f1, f2 = _tiny_feats()
    student = Stub(torch.tensor(zs), [fs] * 3)
    t1, t2 = Stub(torch.tensor(z1), [f1] * 3), Stub(torch.tensor(z2), [f2] * 3)
    cfg = dict(CFG, alpha=0.5, temperature=2.0)
    method = build("tgd", student, {"image": t1, "topology": t2}, cfg)
    batch = {"x": torch.zeros(2, 1), "pi": torch.zeros(2, 1), "y": torch.tensor(y)}
    logits, losses = method(batch)
    lam, T, a, g = 0.9, 2.0, 0.5, 1000.0
    ce = (1 - lam) * _hand_ce(zs, y)
    kd = lam * T * T * (a * _hand_kl(zs, z1, T) / 2 + (1 - a) * _hand_kl(zs, z2, T) / 2)
    sim = g * 3 * _hand_merged_sim(a)
    assert set(losses) == {"ce", "kd", "sim"}
    assert losses["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert losses["kd"].item() == pytest.approx(kd, rel=1e-5)
    assert losses["sim"].item() == pytest.approx(sim, rel=1e-5)
    assert sum(losses.values()).item() == pytest.approx(ce + kd + sim, rel=1e-5)
    torch.testing.assert_close(logits, torch.tensor(zs))
    # kl_reduction "mean" divides the KL by the number of classes
    _, m_losses = build("tgd", student, {"image": t1, "topology": t2},
                               dict(cfg, kl_reduction="mean"))(batch)
    assert m_losses["kd"].item() == pytest.approx(kd / 3, rel=1e-5)


def test_tpkd_total_equals_parts():
    zs, z1, z2 = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    fs = [torch.randn(4, 3, 2, 2) for _ in range(3)]
    f1 = [torch.randn(4, 6, 2, 2) for _ in range(3)]
    f2 = [torch.randn(4, 6, 3, 3) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 3])
    method = build("tpkd", Stub(zs, fs), {"image": Stub(z1, f1), "topology": Stub(z2, f2)}, CFG)
    _, losses = method({"x": torch.zeros(4, 1), "pi": torch.zeros(4, 1), "y": y})
    lam, T, a = 0.9, 4.0, 0.7
    kd = lam * T * T * (a * kd_kl(zs, z1, T) + (1 - a) * kd_kl(zs, z2, T))
    assert set(losses) == {"ce", "kd", "orth"}
    assert losses["ce"].item() == pytest.approx((1 - lam) * nn.functional.cross_entropy(zs, y).item(), rel=1e-5)
    assert losses["kd"].item() == pytest.approx(kd.item(), rel=1e-5)
    assert losses["orth"].item() == pytest.approx(200.0 * orth_loss(fs, f1, f2, a).item(), rel=1e-5)


def _nets(pi_channels=2):
    student = build_model("wrn10_1", 3, 5)
    t1 = build_model("wrn10_1", 3, 5)
    t2 = build_model("wrn10_1", pi_channels, 5)
    return student, {"image": t1, "topology": t2}


def _batch(b=8):
    return {"x": torch.randn(b, 3, 8, 8), "pi": torch.randn(b, 2, 10, 10),
            "y": torch.randint(0, 5, (b,))}


def test_tgd_with_alpha_one_is_kd_plus_sp():
    student, teachers = _nets()
    batch = _batch()
    cfg = dict(CFG, alpha=1.0)
    _, tgd = build("tgd", student, teachers, cfg)(batch)
    _, kd = build("kd", student, teachers, cfg)(batch)
    _, sp = build("sp", student, teachers, cfg)(batch)
    for key, ref in (("ce", kd["ce"]), ("kd", kd["kd"]), ("sim", sp["sim"])):
        assert tgd[key].item() == pytest.approx(ref.item(), rel=1e-5)


def test_tgd_t1_is_tgd_at_alpha_one_without_teacher_2():
    student, teachers = _nets()
    batch = _batch()
    _, tgd = build("tgd", student, teachers, dict(CFG, alpha=1.0))(batch)
    method = build("tgd_t1", student, {"image": teachers["image"]}, CFG)   # no teacher 2 needed
    _, t1 = method({"x": batch["x"], "y": batch["y"]})                    # nor persistence images
    assert set(t1) == {"ce", "kd", "sim"}
    for key in t1:
        assert t1[key].item() == pytest.approx(tgd[key].item(), rel=1e-5)


def _hand_averaged_kl(zs, teachers, T):
    """sum over batch and classes of p_avg (log p_avg - log p_s), p_avg the mean teacher softmax."""
    total = 0.0
    for i, rs in enumerate(zs):
        ps = _softmax(rs, T)
        pts = [_softmax(zt[i], T) for zt in teachers]
        pa = [sum(col) / len(pts) for col in zip(*pts)]
        total += sum(a * (math.log(a) - math.log(b)) for a, b in zip(pa, ps))
    return total


def test_aver_total_equals_hand_computed_parts():
    zs = [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]
    z1 = [[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]
    z2 = [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    y = [0, 2]
    T, lam = 2.0, 0.9
    total = _hand_averaged_kl(zs, [z1, z2], T)
    got = averaged_kd_kl(torch.tensor(zs), [torch.tensor(z1), torch.tensor(z2)], T, "batchmean")
    assert got.item() == pytest.approx(total / 2, rel=1e-5)
    # the average of the softened outputs, not of the logits, nor the average of two KLs
    assert total != pytest.approx(_hand_kl(zs, [[(a + b) / 2 for a, b in zip(r1, r2)]
                                                for r1, r2 in zip(z1, z2)], T), rel=1e-3)
    assert total < (_hand_kl(zs, z1, T) + _hand_kl(zs, z2, T)) / 2   # KL is convex in the target
    one = averaged_kd_kl(torch.tensor(zs), [torch.tensor(z1)], T, "mean")
    assert one.item() == pytest.approx(_hand_kl(zs, z1, T) / 6, rel=1e-5)
    student = Stub(torch.tensor(zs), [torch.zeros(2, 1)] * 3)
    t1 = Stub(torch.tensor(z1), [torch.zeros(2, 1)] * 3)
    t2 = Stub(torch.tensor(z2), [torch.zeros(2, 1)] * 3)
    method = build("aver", student, {"image": t1, "topology": t2}, dict(CFG, temperature=T))
    _, parts = method({"x": torch.zeros(2, 1), "pi": torch.zeros(2, 1), "y": torch.tensor(y)})
    assert set(parts) == {"ce", "kd"}
    assert parts["ce"].item() == pytest.approx((1 - lam) * _hand_ce(zs, y), rel=1e-5)
    assert parts["kd"].item() == pytest.approx(lam * T * T * total / 2, rel=1e-5)


def _hand_dkd(zs, zt, y, T):
    """mdistiller's dkd_loss written out per sample: TCKD on (p_target, 1 - p_target); NCKD on
    the non-target classes renormalised; each T^2 * sum / batch."""
    tckd = nckd = 0.0
    for rs, rt, c in zip(zs, zt, y):
        ps, pt = _softmax(rs, T), _softmax(rt, T)
        bs, bt = (ps[c], 1 - ps[c]), (pt[c], 1 - pt[c])
        tckd += sum(a * math.log(a / b) for a, b in zip(bt, bs))
        os_ = [p / (1 - ps[c]) for j, p in enumerate(ps) if j != c]
        ot = [p / (1 - pt[c]) for j, p in enumerate(pt) if j != c]
        nckd += sum(a * math.log(a / b) for a, b in zip(ot, os_))
    return T * T * tckd / len(y), T * T * nckd / len(y)


def test_dkd_parts_and_warmup_equal_hand_computed_values():
    zs = [[1.0, 0.0, -1.0, 0.3], [0.5, 0.5, 2.0, -0.2], [0.0, 1.5, 0.1, 0.4]]
    zt = [[2.0, 0.0, 0.0, 1.0], [0.0, 1.0, 3.0, 0.5], [1.0, 2.0, -1.0, 0.0]]
    y = [0, 2, 1]
    T = 4.0
    want_t, want_n = _hand_dkd(zs, zt, y, T)
    tckd, nckd = dkd_parts(torch.tensor(zs), torch.tensor(zt), torch.tensor(y), T)
    assert tckd.item() == pytest.approx(want_t, rel=1e-4)
    assert nckd.item() == pytest.approx(want_n, rel=1e-4)
    student = Stub(torch.tensor(zs), [torch.zeros(3, 1)] * 3)
    teacher = Stub(torch.tensor(zt), [torch.zeros(3, 1)] * 3)
    block = {"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": T, "warmup": 20}
    method = build_method("dkd", student, {"image": teacher}, block)
    batch = {"x": torch.zeros(3, 1), "y": torch.tensor(y)}
    for epoch, ramp in ((0, 1 / 20), (9, 10 / 20), (19, 1.0), (30, 1.0)):   # 0-based epochs
        method.start_epoch(epoch)
        _, parts = method(batch)
        assert set(parts) == {"ce", "tckd", "nckd"}
        assert parts["ce"].item() == pytest.approx(_hand_ce(zs, y), rel=1e-5)
        assert parts["tckd"].item() == pytest.approx(ramp * want_t, rel=1e-4)
        assert parts["nckd"].item() == pytest.approx(ramp * 8.0 * want_n, rel=1e-4)
    with pytest.raises(ParamsError, match=r"distill\.dkd\.warmup"):
        build_method("dkd", student, {"image": teacher}, dict(block, warmup=0))


# -------------------------------------------------------------------------- Method contract
@pytest.mark.parametrize("name", ALL)
def test_teachers_stay_frozen(name):
    student, teachers = _nets()
    method = build(name, student, teachers, CFG)
    teachers = dict(method.teachers)                 # the ones this method uses
    assert set(teachers) == ({"image"} if name in ONE_TEACHER else {"image", "topology"})
    before = {k: {n: p.clone() for n, p in t.state_dict().items()} for k, t in teachers.items()}
    method.train()
    assert method.training and method.student.training
    assert all(not t.training for t in method.teachers.values())
    assert all(not p.requires_grad for t in teachers.values() for p in t.parameters())
    s_before = [p.clone() for p in student.parameters()]
    opt = torch.optim.SGD(method.student_parameters(), lr=0.1)
    _, losses = method(_batch())
    sum(losses.values()).backward()
    opt.step()
    for k, t in teachers.items():
        assert all(p.grad is None for p in t.parameters())
        for n, v in t.state_dict().items():     # weights AND BN running stats unchanged
            torch.testing.assert_close(v, before[k][n])
    assert any(not torch.equal(a, b) for a, b in zip(s_before, student.parameters()))
    student_ids = {id(p) for p in student.parameters()}
    assert {id(p) for p in method.student_parameters()} == student_ids
    method.train(True)
    assert all(not t.training for t in method.teachers.values())


@pytest.mark.parametrize("name", ALL)
def test_distillation_steps_lower_the_loss(name):
    student, teachers = _nets()
    method = build(name, student, teachers, CFG).train()
    batch = _batch()
    opt = torch.optim.Adam(method.student_parameters(), lr=1e-2)
    first = None
    for _ in range(6):
        opt.zero_grad()
        _, losses = method(batch)
        loss = sum(losses.values())
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sum(method(batch)[1].values()).item()
    assert after < first


def test_scratch_method_and_input_key():
    method = build("scratch", build_model("wrn10_1", 3, 5), {}, {})
    assert method.inputs == ("x",) and set(method(_batch())[1]) == {"ce"}
    model = build_model("wrn10_1", 2, 5)
    pi_method = build("scratch", model, {}, CFG, input_key="pi")
    assert pi_method.inputs == ("pi",)
    logits, losses = pi_method(_batch())
    assert logits.shape == (8, 5) and losses["ce"].requires_grad
    with pytest.raises(ParamsError, match="input_key"):
        build("scratch", model, {}, {}, input_key="y")


def test_methods_declare_their_inputs_and_read_only_those():
    student, teachers = _nets()
    inputs = {n: build(n, student, teachers, CFG).inputs for n in ALL}
    assert inputs == {"kd": ("x",), "sp": ("x",), "tgd": ("x", "pi"), "tpkd": ("x", "pi"),
                      "tgd_t1": ("x",), "aver": ("x", "pi"), "dkd": ("x",)}
    batch = _batch()
    for name, keys in inputs.items():  # a batch with only the declared inputs is enough
        build(name, student, teachers, CFG)({k: batch[k] for k in (*keys, "y")})
    with pytest.raises(KeyError, match="'pi'"):
        build("tgd", student, teachers, CFG)({"x": batch["x"], "y": batch["y"]})


def test_methods_read_only_their_declared_params():
    """Each method's validated params hold exactly the keys it declares (what its DVC stage
    depends on): kd and sp never see alpha, tgd and tpkd do."""
    student, teachers = _nets()
    read = {n: set(build(n, student, teachers, CFG).hparams.model_dump(by_alias=True))
            for n in ALL}
    assert read == {"kd": {"lambda", "temperature", "kl_reduction"}, "sp": {"lambda", "gamma"},
                    "tgd": {"lambda", "temperature", "kl_reduction", "alpha", "gamma"},
                    "tpkd": {"lambda", "temperature", "kl_reduction", "alpha", "beta"},
                    "tgd_t1": {"lambda", "temperature", "kl_reduction", "gamma"},
                    "aver": {"lambda", "temperature", "kl_reduction"},
                    "dkd": {"ce_weight", "alpha", "beta", "temperature", "warmup"}}


def test_diagnostics_are_reported_apart_from_the_losses():
    student, teachers = _nets()
    method = build("kd", student, teachers, CFG)
    method.diagnose("teacher_share", torch.tensor(0.25))
    assert method.pop_diagnostics() == {"teacher_share": 0.25}
    assert method.pop_diagnostics() == {}


# ---------------------------------------------------------------------------------- registry
def test_registry_builds_every_method_by_name():
    assert {"scratch", *ALL} <= set(METHODS)
    student, teachers = _nets()
    for name in METHODS:
        method = build(name, student, teachers, CFG)
        assert isinstance(method, Method) and method.name == name


def test_unknown_method_raises_params_error_naming_it():
    student, teachers = _nets()
    with pytest.raises(ParamsError, match="'fitnet'") as err:
        build("fitnet", student, teachers, CFG)
    assert "tgd" in str(err.value)


def test_missing_teacher_or_param_raises_params_error():
    student, teachers = _nets()
    with pytest.raises(ParamsError, match="topology"):
        build("tgd", student, {"image": teachers["image"]}, CFG)
    cfg = dict(CFG)
    del cfg["gamma"]
    with pytest.raises(ParamsError, match=r"missing key distill\.sp\.gamma"):
        build("sp", student, teachers, cfg)
    with pytest.raises(ParamsError, match=r"distill\.tgd\.alpha=1\.5"):
        build("tgd", student, teachers, dict(CFG, alpha=1.5))
    with pytest.raises(ParamsError, match="kl_reduction"):
        build("kd", student, teachers, dict(CFG, kl_reduction="sum"))
    with pytest.raises(ParamsError, match=r"distill\.kd\.temperature=inf"):
        build("kd", student, teachers, dict(CFG, temperature=float("inf")))
