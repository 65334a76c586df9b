"""prunelib on people's own models (issue #16), one section per numbered problem.

1. structured pruning refuses what it cannot prove (residual blocks in a Sequential);
2. unsupported parametrised layers raise instead of being skipped; masks cover them;
3. a pooled global mode, and the sparsity reached reported;
4. masks that persist in any training loop, torch.nn.utils.prune interoperability,
   shape and 0/1 checks;
5. logit-only functions refuse probabilities; detection metrics by keyword;
6. (patience: tests/test_training.py) submodules and version on ``import prunelib``;
   docstrings cite only what the repository holds.

Plus the dependency-graph path: a pruned torchvision ResNet-18 computes what the dense
one computes with the removed channels silenced.
"""

import copy
import importlib.metadata
import inspect
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

import prunelib
from prunelib import metrics as M
from prunelib import pruning as P
from prunelib.models import MLP, Conv2, PosterCNN, layer_roles
from prunelib.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return model


class Residual(nn.Module):
    """A user's residual block: ``x + l(x)``."""

    def __init__(self, n):
        super().__init__()
        self.l = nn.Linear(n, n)

    def forward(self, x):
        return x + self.l(x)


# ---------------------------------------------------------------------------
# 1. residual blocks inside an nn.Sequential
# ---------------------------------------------------------------------------
def test_torchvision_residual_blocks_inside_a_sequential_are_refused():
    tv = pytest.importorskip("torchvision")
    r = _seeded(lambda: tv.models.resnet18(weights=None))
    seq = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.avgpool, nn.Flatten(),
                        nn.Linear(64, 10)).eval()
    with pytest.raises(P.UnsupportedModelError, match=r"'4\.0' \(BasicBlock\).*not a plain "
                                                      r"nn\.Sequential.*method='graph'"):
        P.prune_structured(seq, 0.5)
    with pytest.raises(ValueError, match="BasicBlock"):      # still a ValueError
        P.prune_structured_to(seq, 0.5)


def test_a_custom_residual_block_is_refused_everywhere():
    net = _seeded(lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), Residual(8), nn.ReLU(),
                                        nn.Linear(8, 2)))
    for call in (lambda: P.prune_structured(net, 0.5),
                 lambda: P.prune_structured_to(net, 0.5),
                 lambda: P.shrink(net, {"0": torch.tensor([0, 1])}),
                 lambda: P.unit_masks(net, {"0": torch.tensor([0, 1])})):
        with pytest.raises(P.UnsupportedModelError, match=r"module '2' \(Residual\)"):
            call()


def test_sequential_with_its_own_forward_and_shared_layers_are_refused():
    class Skip(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    skip = nn.Sequential(nn.Linear(2, 4), Skip(nn.Linear(4, 4)), nn.Linear(4, 2))
    with pytest.raises(P.UnsupportedModelError, match=r"module '1' \(Skip\)"):
        P.prune_structured(skip, 0.5)
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(nn.Linear(2, 4), shared, nn.ReLU(), shared, nn.Linear(4, 2))
    with pytest.raises(P.UnsupportedModelError, match="registered as '1'"):
        P.prune_structured(twice, 0.5)
    act = nn.ReLU()                       # a shared parameter-free activation is harmless
    ok = nn.Sequential(nn.Linear(2, 4), act, nn.Linear(4, 4), act, nn.Linear(4, 2))
    assert P.prune_structured(ok, 0.5).model[2].out_features == 2


def test_library_models_and_nested_sequentials_still_pass():
    for make in (lambda: MLP(2, (8, 8), 2), PosterCNN, Conv2):
        P.check_structured(make())
    nested = _seeded(lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 8), nn.ReLU()),
                                           nn.Sequential(nn.Linear(8, 6), nn.ReLU()),
                                           nn.Linear(6, 2)))
    res = P.prune_structured(nested, 0.5)
    x = torch.randn(5, 2)
    masked = P.apply_masks(copy.deepcopy(nested), P.unit_masks(nested, res.kept))
    assert torch.allclose(res.model(x), masked(x), atol=1e-6)


# ---------------------------------------------------------------------------
# 2. other parametrised layers: never a silent skip
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer, name", [
    (nn.Conv1d(1, 4, 3), "Conv1d"), (nn.Conv3d(1, 4, 3), "Conv3d"),
    (nn.ConvTranspose2d(1, 4, 3), "ConvTranspose2d"), (nn.Embedding(10, 4), "Embedding"),
    (nn.LayerNorm(4), "LayerNorm"), (nn.Conv2d(4, 4, 3, groups=2), "groups=2"),
])
def test_unsupported_layers_raise_naming_the_module(layer, name):
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), layer, nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(P.UnsupportedModelError, match=rf"'2'.*{name}.*Supported: "):
        P.prune_structured(net, 0.5)


def test_conv1d_model_masks_cover_every_layer():
    net = _seeded(lambda: nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(4 * 6, 8), nn.ReLU(), nn.Linear(8, 2)))
    assert dict(layer_roles(net)) == {"0": "features", "3": "head", "5": "output"}
    masks, report = P.magnitude_masks(net, 0.5, scope="global", return_report=True)
    assert set(masks) == set(report.layers) == {"0.weight", "3.weight", "5.weight"}
    pool = masks["0.weight"].numel() + masks["3.weight"].numel()
    assert int((masks["0.weight"] == 0).sum() + (masks["3.weight"] == 0).sum()) == pool // 2


def test_masks_refuse_to_leave_weights_out_of_a_pool():
    class WithRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4)
            self.fc = nn.Linear(4, 2)

    net = WithRNN()
    with pytest.raises(ValueError, match=r"rnn\.weight_ih_l0 \(GRU\)"):
        P.magnitude_masks(net, 0.5, scope="global")
    assert set(P.magnitude_masks(net, 0.5, layers=["fc"])) == {"fc.weight"}


# ---------------------------------------------------------------------------
# 3. global pruning: the output layer, and the sparsity reached
# ---------------------------------------------------------------------------
def test_pooled_scope_is_torch_global_unstructured():
    net = _seeded(lambda: MLP(2, (30, 20), 3))
    masks, report = P.magnitude_masks(net, 0.8, scope="pooled", return_report=True)
    ref = copy.deepcopy(net)
    params = [(ref[i], "weight") for i in (0, 2, 4)]
    torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=0.8)
    for i in (0, 2, 4):
        assert torch.equal(masks[f"{i}.weight"], ref[i].weight_mask)
    total = sum(m.numel() for m in masks.values())
    assert report.masked == round(0.8 * total) and report.overall == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ValueError, match="output_ratio"):
        P.magnitude_masks(net, 0.8, scope="pooled", output_ratio=0.4)


def test_global_default_is_unchanged_and_reports_what_it_reached():
    net = _seeded(lambda: MLP(2, (30, 20), 3))
    masks = P.magnitude_masks(net, 0.8, scope="global")
    again, report = P.magnitude_masks(net, 0.8, scope="global", return_report=True)
    assert all(torch.equal(masks[k], again[k]) for k in masks)
    assert report.fraction("4.weight") == pytest.approx(0.4, abs=0.02)   # output at half rate
    assert report.overall < 0.8                                         # so not 80% overall
    assert P.sparsity_report(masks).layers == report.layers
    assert "overall" in str(report)
    model_report = P.sparsity_report(P.apply_masks(copy.deepcopy(net), masks))
    assert model_report.layers == report.layers          # a model: its weights' exact zeros
    _, rep = P.random_masks(net, 0.5, scope="pooled", seed=1, return_report=True)
    assert rep.overall == pytest.approx(0.5, abs=1e-3)


# ---------------------------------------------------------------------------
# 4. masks in any training loop
# ---------------------------------------------------------------------------
def _sgd_loop(model, steps=25, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, y = torch.randn(16, 2, generator=g), torch.randint(0, 2, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model(torch.zeros(1, 2))            # the forward pass the next use would make
    return model


def test_attached_masks_hold_in_a_plain_sgd_loop():
    net = _seeded(lambda: MLP(2, (16, 16), 2))
    masks = P.magnitude_masks(net, 0.8)
    once = _sgd_loop(P.apply_masks(copy.deepcopy(net), masks))
    assert (once[0].weight[masks["0.weight"] == 0] != 0).any()     # apply_masks: revived
    held = _sgd_loop(P.attach_masks(copy.deepcopy(net), masks))
    for k, m in masks.items():
        layer = held.get_submodule(k.rpartition(".")[0])
        assert (layer.weight[m == 0] == 0).all()
    assert set(P.attached_masks(held)) == set(masks)
    P.make_permanent(held)
    assert set(held.state_dict()) == set(net.state_dict())          # plain keys again
    for k, m in masks.items():
        assert (held.state_dict()[k][m == 0] == 0).all()
    assert not P.attached_masks(held)


def test_attached_unit_masks_compute_the_small_network():
    net = _seeded(lambda: PosterCNN()).eval()
    res = P.prune_structured(net, 0.5, layers="head")
    x = torch.randn(3, 3, 32, 32)
    attached = P.attach_masks(copy.deepcopy(net), P.unit_masks(net, res.kept))
    assert torch.allclose(attached(x), res.model.eval()(x), atol=1e-5)
    restored = P.remove_masks(attached)
    assert set(restored.state_dict()) == set(net.state_dict())
    assert torch.allclose(restored(x), net(x))


def test_models_carrying_torch_prune_masks_interoperate():
    net = _seeded(lambda: MLP(2, (16, 16), 2))
    torch_prune.l1_unstructured(net[0], "weight", amount=0.25)     # 8 of 32 weights
    torch_mask = net[0].weight_mask.clone()
    masks = P.magnitude_masks(net, 0.5)                           # no KeyError: '0.weight'
    assert (masks["0.weight"][torch_mask == 0] == 0).all()         # torch's zeros count
    assert int((masks["0.weight"] == 0).sum()) == 8 + round(0.5 * 24)
    P.apply_masks(net, masks)                                      # combined into torch's mask
    assert torch.equal(net[0].weight_mask, masks["0.weight"])
    x, y = torch.randn(32, 2), torch.randint(0, 2, (32,))
    train(net, (x, y), (x, y), TrainConfig(max_iters=5, eval_every=5, patience=None),
          masks=masks)                                             # prunelib's trainer too
    P.attach_masks(net, {"2.weight": masks["2.weight"]})
    _sgd_loop(net, steps=5)                                        # and a plain loop
    assert (net[0].weight[masks["0.weight"] == 0] == 0).all()
    assert (net[2].weight[masks["2.weight"] == 0] == 0).all()
    P.make_permanent(net)
    assert "0.weight_orig" not in net.state_dict()
    assert (net[0].weight[masks["0.weight"] == 0] == 0).all()


def test_every_mask_is_checked_for_shape_and_binary_values():
    net = _seeded(lambda: MLP(2, (4,), 2))
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(ValueError, match=r"shape \(1, 2\).*\(4, 2\).*no broadcasting"):
        P.apply_masks(net, {"0.bias": torch.ones(4), "0.weight": torch.ones(1, 2)})
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    with pytest.raises(ValueError, match="only 0 and 1"):
        P.apply_masks(net, {"0.weight": torch.full((4, 2), 0.5)})
    for call in (lambda m: P.attach_masks(net, m), lambda m: P.magnitude_masks(net, 0.5, masks=m),
                 lambda m: P.treat("finetune", trained=before, init=before, masks=m)):
        with pytest.raises(ValueError, match="shape"):
            call({"0.weight": torch.ones(1, 2)})
        with pytest.raises(ValueError, match="only 0 and 1"):
            call({"0.weight": torch.full((4, 2), 2.0)})
    with pytest.raises(ValueError, match="only 0 and 1"):
        train(net, (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)),
              (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)), TrainConfig(max_iters=1),
              masks={"0.weight": torch.full((4, 2), 0.5)})
    P.apply_masks(net, {"0.weight": torch.ones(4, 2, dtype=torch.bool)})    # bool is fine


# ---------------------------------------------------------------------------
# 5. logits, not probabilities; detection metrics by keyword
# ---------------------------------------------------------------------------
def _logits_and_labels(n=400, c=4, t=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, c))
    p = np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    return z, y


@pytest.mark.parametrize("fn", [M.fit_temperature, M.msp, M.neg_entropy, M.neg_energy,
                                M.max_logit, M.softmax, M.apply_temperature])
def test_logit_functions_refuse_probabilities(fn):
    z, y = _logits_and_labels()
    probs = torch.softmax(torch.tensor(z, dtype=torch.float32), 1)
    args = {M.fit_temperature: (probs, y), M.apply_temperature: (probs, 2.0)}.get(fn, (probs,))
    with pytest.raises(ValueError, match="look like probabilities"):
        fn(*args)
    fn(*((z,) + args[1:]))                                       # logits are fine
    fn(*args, from_logits=True)                                  # trusted as logits


def test_from_logits_false_takes_probabilities_where_they_determine_the_result():
    z, y = _logits_and_labels()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert M.fit_temperature(p, y, from_logits=False) == pytest.approx(M.fit_temperature(z, y),
                                                                       rel=1e-6)
    assert np.allclose(M.msp(p, from_logits=False), p.max(1))
    assert np.allclose(M.neg_entropy(p, from_logits=False), M.neg_entropy(z))
    for fn in (M.neg_energy, M.max_logit):
        with pytest.raises(ValueError, match="takes logits"):
            fn(p, from_logits=False)


def test_detection_metrics_take_scores_by_keyword():
    id_s, ood_s = np.array([0.9, 0.8, 0.95]), np.array([0.1, 0.3])
    for fn in (M.auroc, M.aupr_in, M.aupr_out, M.fpr_at_95_tpr, M.fpr_at_tpr):
        params = inspect.signature(fn).parameters
        assert params["id_scores"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["ood_scores"].kind is inspect.Parameter.KEYWORD_ONLY
    assert M.auroc(id_scores=id_s, ood_scores=ood_s) == 1.0
    assert M.auroc(ood_scores=ood_s, id_scores=id_s) == 1.0     # order of keywords is free
    assert M.fpr_at_tpr(id_scores=id_s, ood_scores=ood_s, tpr=1.0) == 0.0
    with pytest.warns(DeprecationWarning, match="by keyword"):    # the old positional form
        assert M.auroc(id_s, ood_s) == 1.0
    with pytest.raises(TypeError):
        M.auroc(id_s, ood_s, ood_s)
    with pytest.raises(TypeError):
        M.auroc(id_s, id_scores=id_s, ood_scores=ood_s)


# ---------------------------------------------------------------------------
# 6. the package: submodules, version, citations
# ---------------------------------------------------------------------------
def test_import_prunelib_exposes_its_parts_without_torchvision():
    code = ("import sys, prunelib\n"
            "assert prunelib.metrics.ece and prunelib.pruning.prune_structured\n"
            "assert prunelib.data.load_ood and prunelib.training.train and prunelib.models.MLP\n"
            "assert 'metrics' in dir(prunelib)\n"
            "assert 'torchvision' not in sys.modules and 'torch_pruning' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(AttributeError):
        prunelib.no_such_part  # noqa: B018


def test_version_is_the_installed_distributions():
    assert prunelib.__version__ == importlib.metadata.version("prunelib")


def test_docstrings_cite_only_what_the_repository_holds():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{(\w+),", bib, re.MULTILINE)
    files = [p for part in ("pruning", "metrics", "data") for p in
             (ROOT / "src" / "prunelib" / part).glob("*.py")]
    files += [ROOT / "src" / "prunelib" / f for f in ("__init__.py", "training.py", "models.py")]
    for path in files:
        text = path.read_text()
        assert "shared/reference" not in text and "pitfalls.md" not in text, path
        for author, year in re.findall(r"([A-Z][a-z]+)(?: et al\.| & [A-Z][a-z]+)'?s?,? (\d{4})",
                                       text):
            assert any(k.startswith(f"{author.lower()}{year}") for k in keys), (path, author)


# ---------------------------------------------------------------------------
# any architecture: the dependency graph (Torch-Pruning, prunelib[graph])
# ---------------------------------------------------------------------------
def _silenced(model, kept):
    """The dense model with every removed output channel silenced: its weights and bias
    zeroed, and its BatchNorm's scale and shift (torchvision's conv/bn naming)."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, keep in kept.items():
            layer = ref.get_submodule(name)
            gone = torch.ones(layer.weight.shape[0], dtype=torch.bool)
            gone[keep] = False
            layer.weight[gone] = 0
            if layer.bias is not None:
                layer.bias[gone] = 0
            bn = name.replace("conv", "bn").replace("downsample.0", "downsample.1")
            if bn != name:
                ref.get_submodule(bn).weight[gone] = 0
                ref.get_submodule(bn).bias[gone] = 0
    return ref


def test_pruned_resnet18_equals_the_dense_one_with_removed_channels_silenced():
    pytest.importorskip("torch_pruning")
    tv = pytest.importorskip("torchvision")
    dense = _randomise_bn(_seeded(lambda: tv.models.resnet18(weights=None, num_classes=10))).eval()
    before = copy.deepcopy(dense.state_dict())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    res = P.prune_structured(dense, 0.5, method="graph", example_inputs=x[:1])
    assert res.method == "graph"
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # untouched
    small = res.model.eval()
    assert small.fc.out_features == 10 and "fc" not in res.kept       # the output layer, by role
    assert small.conv1.out_channels == 32 and small.layer4[1].conv2.out_channels == 256
    assert len(res.kept) == 20                                          # every hidden conv
    assert all(len(k) == n - n // 2 for k, n in
               ((res.kept[name], dense.get_submodule(name).out_channels) for name in res.kept))
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < 0.3 * sum(p.numel() for p in dense.parameters())
    with torch.no_grad():
        silenced = _silenced(dense, res.kept)
        assert torch.allclose(small(x), silenced(x), atol=1e-4)
        assert not torch.allclose(small(x), dense(x), atol=1e-2)       # something was removed


@pytest.mark.parametrize("score", ["l1", "l2", "random"])
def test_graph_path_equals_the_poster_algorithm_on_sequential_models(score):
    pytest.importorskip("torch_pruning")
    for make, shape in ((lambda: PosterCNN(), (1, 3, 32, 32)),
                        (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                               nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.ReLU(),
                                               nn.Linear(10, 3)), (1, 3, 6, 6))):
        net = _randomise_bn(_seeded(make)).eval()
        seq = P.prune_structured(net, 0.6, score=score, seed=2)
        graph = P.prune_structured(net, 0.6, score=score, seed=2, method="graph",
                                   example_inputs=torch.randn(shape))
        assert seq.kept.keys() == graph.kept.keys()
        assert all(torch.equal(seq.kept[k], graph.kept[k]) for k in seq.kept)
        a, b = seq.model.state_dict(), graph.model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_auto_method_and_missing_inputs_or_library():
    pytest.importorskip("torch_pruning")
    net = _seeded(lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), Residual(8), nn.ReLU(),
                                        nn.Linear(8, 2)))
    with pytest.warns(UserWarning, match=r"dependency graph.*'2' \(Residual\)"):
        res = P.prune_structured(net, 0.5, method="auto", example_inputs=torch.randn(1, 2))
    assert res.method == "graph" and res.model[4].out_features == 2
    x = torch.randn(4, 2)
    keep = res.kept["0"]
    assert res.kept.keys() == {"0", "2.l"} and torch.equal(keep, res.kept["2.l"])  # coupled
    ref = copy.deepcopy(net)
    with torch.no_grad():
        gone = torch.ones(8, dtype=torch.bool)
        gone[keep] = False
        for layer in (ref[0], ref[2].l):
            layer.weight[gone] = 0
            layer.bias[gone] = 0
    assert torch.allclose(res.model(x), ref(x), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # a Sequential model: no warning
        assert P.prune_structured(MLP(2, (8,), 2), 0.5, method="auto").method == "sequential"
    with pytest.raises(ValueError, match="example_inputs"):
        P.prune_structured(net, 0.5, method="graph")
    with pytest.raises(ValueError, match="method"):
        P.prune_structured(net, 0.5, method="dag")


def test_graph_path_without_torch_pruning_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(ImportError, match=r"prunelib\[graph\]"):
        P.prune_structured(MLP(2, (4,), 2), 0.5, method="graph", example_inputs=torch.zeros(1, 2))


def test_graph_path_protects_a_declared_output_layer():
    pytest.importorskip("torch_pruning")

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 8), nn.ReLU())
            self.head = nn.Linear(8, 3)
            self.aux = nn.Linear(8, 4)
            self.output_layer = "head"

        def forward(self, x):
            h = self.body(x)
            return torch.cat([self.head(h), self.aux(h)], 1)

    res = P.prune_structured(_seeded(TwoHeads), 0.5, method="graph",
                             example_inputs=torch.randn(1, 2))
    assert res.model.head.out_features == 3 and res.model.body[0].out_features == 4
