"""PyTorch ports of the reference "conv", "loccon" and "deep" nets.

The nets are built from the model files the engine ships (models/conv.json,
models/loccon.json, models/deep.json; see /work/shared/REFERENCE.md and
docs/models.md), layer by layer, so that both engines time the same
architecture. PyTorch works in its native NCHW layout; only the input shape is
given as height x width x channels, as the engine reports it.

Semantics of the reference (TensorFlow/Keras) kept here:
  * conv2d: no bias, 'same' padding as TensorFlow: output ceil(n / stride);
    stride 1 (odd kernel) is Conv2d(padding=k // 2); otherwise the input is
    padded with F.pad, the odd pixel going to the bottom/right (the stride-2
    conv gives 14x14 on 28x28 and 16x16 on 32x32).
  * local2d: locally connected (no weight sharing), built on F.unfold;
    weights [positions, filters, channels * kh * kw]; 'valid' padding.
  * batchnorm after the ReLU: BatchNorm2d(momentum=0.01, eps=1e-3), i.e.
    Keras momentum 0.99; with scale and offset.
  * dropout: nn.Dropout(rate) drops `rate` of the units (Keras semantics).
  * maxpool2d: 'valid' (floor) pooling.
  * weights normal(0, init_std); L2 (Keras convention, loss += l2 * sum w^2)
    as SGD weight decay 2 * l2 on every conv, locally connected and dense
    kernel, the output layer's included, none on batch-norm parameters.

The training steps (BrainProp and EBP) are those of pytorch_dense_reference,
which work on any nn.Module that maps a batch to C linear outputs.
"""

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import pytorch_dense_reference as dense_ref

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODELS = ("conv", "loccon", "deep")
LEARNING_RATE = dense_ref.LEARNING_RATE
RULES = dense_ref.RULES
make_train_step = dense_ref.make_train_step  # rule-agnostic of the net


# ---------------------------------------------------------------- layers

def _pair(value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"expected an int or [h, w], got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def tf_same_pads(size, kernel, stride):
    """F.pad amounts (left, right, top, bottom) of TensorFlow's 'same' padding.

    TF pads so that out = ceil(in / stride); the total is split with the odd
    pixel after (right/bottom).
    """
    pads = []
    for n, k, s in zip(size, kernel, stride):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


def conv_output_size(size, kernel, stride, padding):
    if padding == "same":
        return tuple(-(-n // s) for n, s in zip(size, stride))
    if padding == "valid":
        return tuple((n - k) // s + 1 for n, k, s in zip(size, kernel, stride))
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TensorFlow's 'same' padding (asymmetric where TF is)."""

    def __init__(self, in_channels, out_channels, kernel, stride, bias=False):
        kernel, stride = _pair(kernel), _pair(stride)
        symmetric = stride == (1, 1) and all(k % 2 == 1 for k in kernel)
        super().__init__(in_channels, out_channels, kernel, stride,
                         padding=(kernel[0] // 2, kernel[1] // 2) if symmetric else 0,
                         bias=bias)
        self.tf_pad = not symmetric

    def forward(self, x):
        if self.tf_pad:
            x = F.pad(x, tf_same_pads(x.shape[-2:], self.kernel_size, self.stride))
        return super().forward(x)


class LocallyConnected2d(nn.Module):
    """Keras LocallyConnected2D in NCHW: a 3x3 (say) filter bank per output position.

    x [B, C, H, W] -> F.unfold -> columns [B, C*kh*kw, P] (P = out_h * out_w
    positions), then one small GEMM per position (torch.bmm over P):
    y[b, o, p] = sum_k weight[p, o, k] * columns[b, k, p].
    """

    def __init__(self, in_channels, out_channels, in_size, kernel, stride,
                 padding="valid", bias=False):
        super().__init__()
        self.kernel, self.stride = _pair(kernel), _pair(stride)
        self.in_size = tuple(in_size)
        self.padding = padding
        self.pads = (tf_same_pads(self.in_size, self.kernel, self.stride)
                     if padding == "same" else None)
        self.out_size = conv_output_size(self.in_size, self.kernel, self.stride, padding)
        if min(self.out_size) < 1:
            raise ValueError(f"input {self.in_size} too small for a {self.kernel} "
                             f"'{padding}' locally connected layer")
        self.in_channels, self.out_channels = in_channels, out_channels
        positions = self.out_size[0] * self.out_size[1]
        fan_in = in_channels * self.kernel[0] * self.kernel[1]
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = (nn.Parameter(torch.zeros(out_channels, *self.out_size))
                     if bias else None)

    def forward(self, x):
        if tuple(x.shape[-2:]) != self.in_size:
            raise ValueError(f"locally connected layer built for {self.in_size}, "
                             f"got input {tuple(x.shape[-2:])}")
        if self.pads is not None:
            x = F.pad(x, self.pads)
        cols = F.unfold(x, self.kernel, stride=self.stride)          # [B, K, P]
        y = torch.bmm(cols.permute(2, 0, 1), self.weight.transpose(1, 2))  # [P, B, O]
        y = y.permute(1, 2, 0).reshape(x.shape[0], self.out_channels, *self.out_size)
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, "
                f"kernel_size={self.kernel}, stride={self.stride}, padding={self.padding!r}, "
                f"out_size={self.out_size}, bias={self.bias is not None}")


# ---------------------------------------------------------------- nets

def load_spec(name):
    with open(MODELS_DIR / f"{name}.json") as f:
        return json.load(f)


def reference_batch(name):
    """The reference's batch size for the model (training.batch_size)."""
    return int(load_spec(name)["training"]["batch_size"])


def nchw(input_shape):
    """(H, W, C) as the engine writes it -> (C, H, W) as PyTorch wants it."""
    h, w, c = input_shape
    return (c, h, w)


def _init_weight(module, std):
    nn.init.normal_(module.weight, mean=0.0, std=std)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


def build_net(spec, input_shape=(28, 28, 1), classes=10):
    """nn.Sequential for a model spec (dict, or a name in models/) on HxWxC input.

    Weight layers get an attribute `l2` (their Keras L2 coefficient), read by
    make_optimizer.
    """
    if isinstance(spec, str):
        spec = load_spec(spec)
    default_std = float(spec.get("init_std", 0.05))
    default_l2 = float(spec.get("l2", 0.0))
    shape = nchw(input_shape)  # (C, H, W) while spatial, (features,) once flat
    layers = []

    def weight_layer(module, layer_spec):
        _init_weight(module, float(layer_spec.get("init_std", default_std)))
        module.l2 = float(layer_spec.get("l2", default_l2))
        layers.append(module)

    for i, layer in enumerate(spec["layers"]):
        kind = layer["type"]
        where = f"{spec.get('name', 'model')}: layers[{i}] ({kind})"
        if kind in ("conv2d", "local2d"):
            if len(shape) != 3:
                raise ValueError(f"{where}: needs a spatial input, got {shape}")
            c, h, w = shape
            filters = int(layer["filters"])
            kernel, stride = _pair(layer.get("kernel", 3)), _pair(layer.get("strides", 1))
            padding = layer.get("padding", "valid")
            bias = bool(layer.get("bias", False))
            if kind == "conv2d":
                if padding == "same":
                    module = Conv2dSame(c, filters, kernel, stride, bias=bias)
                elif padding == "valid":
                    module = nn.Conv2d(c, filters, kernel, stride, padding=0, bias=bias)
                else:
                    raise ValueError(f"{where}: unknown padding {padding!r}")
            else:
                module = LocallyConnected2d(c, filters, (h, w), kernel, stride, padding, bias)
            out_h, out_w = conv_output_size((h, w), kernel, stride, padding)
            if out_h < 1 or out_w < 1:
                raise ValueError(f"{where}: input {h}x{w} too small")
            weight_layer(module, layer)
            shape = (filters, out_h, out_w)
        elif kind == "dense":
            if len(shape) != 1:
                raise ValueError(f"{where}: needs a flat input (add a flatten), got {shape}")
            units = int(layer["units"])
            weight_layer(nn.Linear(shape[0], units, bias=bool(layer.get("bias", False))), layer)
            shape = (units,)
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "batchnorm":
            keras_momentum = float(layer.get("momentum", 0.99))
            eps = float(layer.get("epsilon", 1e-3))
            bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            layers.append(bn(shape[0], eps=eps, momentum=round(1.0 - keras_momentum, 10)))
        elif kind == "maxpool2d":
            pool = _pair(layer.get("pool", 2))
            stride = _pair(layer.get("strides", pool))
            layers.append(nn.MaxPool2d(pool, stride))
            c, h, w = shape
            shape = (c,) + conv_output_size((h, w), pool, stride, "valid")
            if min(shape) < 1:
                raise ValueError(f"{where}: input {h}x{w} too small")
        elif kind == "dropout":
            layers.append(nn.Dropout(float(layer["rate"])))
        elif kind == "flatten":
            layers.append(nn.Flatten())
            shape = (math.prod(shape),)
        else:
            raise ValueError(f"{where}: layer type not supported by the PyTorch port")

    if len(shape) != 1:
        raise ValueError(f"{spec.get('name', 'model')}: output layer needs a flat input")
    out_spec = spec.get("output", {})
    weight_layer(nn.Linear(shape[0], classes, bias=bool(out_spec.get("bias", False))), out_spec)
    return nn.Sequential(*layers)


def build_conv_net(input_shape=(28, 28, 1), classes=10):
    return build_net("conv", input_shape, classes)


def build_loccon_net(input_shape=(28, 28, 1), classes=10):
    return build_net("loccon", input_shape, classes)


def build_deep_net(input_shape=(32, 32, 3), classes=10):
    return build_net("deep", input_shape, classes)


def make_optimizer(net, lr=LEARNING_RATE):
    """Plain SGD; Keras L2 l2 * sum(w^2) on a kernel is weight decay 2 * l2."""
    decayed, seen = {}, set()
    for module in net.modules():
        l2 = getattr(module, "l2", None)
        if l2 and isinstance(getattr(module, "weight", None), nn.Parameter):
            decayed.setdefault(2.0 * l2, []).append(module.weight)
            seen.add(id(module.weight))
    plain = [p for p in net.parameters() if id(p) not in seen]
    groups = [{"params": plain, "weight_decay": 0.0}] if plain else []
    groups += [{"params": ps, "weight_decay": wd} for wd, ps in decayed.items()]
    return torch.optim.SGD(groups, lr=lr, momentum=0.0)


def synthetic_batch(batch, input_shape=(28, 28, 1), classes=10, generator=None):
    """Uniform [0,1] NCHW images and uniform labels (timing ignores the values)."""
    return dense_ref.synthetic_batch(batch, generator=generator, shape=nchw(input_shape),
                                     classes=classes)


# ---------------------------------------------------------------- self-check

# Shapes after each conv / locally connected / pool layer, then the flattened
# width and the output, at the two reference input sizes.
EXPECTED_SHAPES = {
    ("conv", (28, 28, 1)): [(32, 28, 28), (32, 14, 14), (6272,), (10,)],
    ("conv", (32, 32, 3)): [(32, 32, 32), (32, 16, 16), (8192,), (10,)],
    ("loccon", (28, 28, 1)): [(32, 26, 26), (32, 12, 12), (4608,), (10,)],
    ("loccon", (32, 32, 3)): [(32, 30, 30), (32, 14, 14), (6272,), (10,)],
    ("deep", (28, 28, 1)): [(64, 28, 28), (64, 28, 28), (64, 14, 14),
                            (128, 14, 14), (128, 14, 14), (128, 7, 7),
                            (128, 7, 7), (128, 7, 7), (128, 7, 7), (128, 3, 3),
                            (1152,), (10,)],
    ("deep", (32, 32, 3)): [(64, 32, 32), (64, 32, 32), (64, 16, 16),
                            (128, 16, 16), (128, 16, 16), (128, 8, 8),
                            (128, 8, 8), (128, 8, 8), (128, 8, 8), (128, 4, 4),
                            (2048,), (10,)],
}
_SHAPE_LAYERS = (nn.Conv2d, LocallyConnected2d, nn.MaxPool2d, nn.Flatten)

# Training check: the prototype task of pytorch_dense_reference at a small
# input, so that a step is cheap (the deep net needs 8x8 for its three pools).
SELFCHECK_INPUT = {"conv": (12, 12, 1), "loccon": (12, 12, 1), "deep": (8, 8, 3)}
# Test accuracy (500 samples) at the last step, seeds 0-3: conv and loccon EBP
# 1.00 after 100 steps; deep EBP 0.82-1.00 after 300 (its Dropout 0.8 on 128
# features makes it slower and noisier); BrainProp, which discovers the classes
# one at a time (paper, Fig. 5), after 300 steps: conv 0.90-1.00, loccon
# 0.58-0.70, deep 0.34-0.43. Pass marks: EBP well above chance, BrainProp 3x
# chance (deep 2.5x, its curve wobbles by a class between evaluations).
SELFCHECK_BATCH = 32
SELFCHECK_STEPS = {"conv": {"ebp": 100, "brainprop": 300},
                   "loccon": {"ebp": 100, "brainprop": 300},
                   "deep": {"ebp": 300, "brainprop": 300}}
SELFCHECK_PASS = {"conv": {"ebp": 0.8, "brainprop": 0.3},
                  "loccon": {"ebp": 0.8, "brainprop": 0.3},
                  "deep": {"ebp": 0.6, "brainprop": 0.25}}


@torch.no_grad()
def layer_shapes(net, input_shape, batch=2):
    x = torch.rand((batch,) + nchw(input_shape))
    shapes = []
    for module in net:
        x = module(x)
        if isinstance(module, _SHAPE_LAYERS):
            shapes.append(tuple(x.shape[1:]))
    shapes.append(tuple(x.shape[1:]))
    return shapes


def check_layers(generator):
    """The locally connected and 'same' conv layers against F.conv2d; True if all agree."""
    ok = True
    for stride in (1, 2):
        x = torch.rand(3, 2, 9, 10, generator=generator)
        w = torch.randn(4, 2, 3, 3, generator=generator)
        local = LocallyConnected2d(2, 4, (9, 10), 3, stride, "valid")
        with torch.no_grad():  # every position gets the same filters: a valid conv
            local.weight.copy_(w.reshape(4, -1).expand(local.weight.shape[0], -1, -1))
        ok &= torch.allclose(local(x), F.conv2d(x, w, stride=stride), atol=1e-5)
    for n in (28, 32, 27):
        x = torch.rand(2, 3, n, n, generator=generator)
        conv = Conv2dSame(3, 4, 3, 2)
        y = conv(x)
        ok &= tuple(y.shape[-2:]) == (-(-n // 2),) * 2
        if n % 2 == 0:  # TF pads only bottom/right: windows start at 0, 2, ...
            ref = F.conv2d(x, conv.weight, stride=2)
            ok &= torch.allclose(y[..., : ref.shape[-2], : ref.shape[-1]], ref, atol=1e-5)
        else:  # odd size: one pixel each side
            ok &= torch.allclose(y, F.conv2d(x, conv.weight, stride=2, padding=1), atol=1e-5)
    conv = Conv2dSame(3, 4, 3, 1)
    x = torch.rand(2, 3, 7, 8, generator=generator)
    ok &= torch.allclose(conv(x), F.conv2d(x, conv.weight, padding=1), atol=1e-5)
    return bool(ok)


def check_optimizer(name):
    """Weight decay 2 * l2 on every kernel, none on batch-norm parameters."""
    spec = load_spec(name)
    net = build_net(spec)
    want = 2.0 * float(spec.get("l2", 0.0))
    decay = {}
    for group in make_optimizer(net).param_groups:
        for p in group["params"]:
            decay[id(p)] = group["weight_decay"]
    ok = len(decay) == len(list(net.parameters()))
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, LocallyConnected2d, nn.Linear)):
            ok &= math.isclose(decay[id(module.weight)], want)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            ok &= decay[id(module.weight)] == 0.0 and decay[id(module.bias)] == 0.0
    return bool(ok)


@torch.no_grad()
def eval_accuracy(net, x, labels):
    """Accuracy without dropout, batch norm on the statistics of the test batch.

    A few hundred steps are too few for the running averages of batch norm
    (momentum 0.01, started at mean 0 and variance 1) to settle; with them the
    deep net sits at chance whatever it has learnt. A copy of the net is used,
    so the running averages of the trained net are untouched.
    """
    probe = copy.deepcopy(net).eval()
    for module in probe.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.train()
    return (probe(x).argmax(dim=1) == labels).float().mean().item()


def train_on_task(name, rule, task, test_x, test_labels, steps, generator, eval_every=50):
    """Train a fresh net on the task; return the test-accuracy curve as [(step, acc)]."""
    net = build_net(name, SELFCHECK_INPUT[name], task.classes)
    net.train()
    step = make_train_step(rule, net, make_optimizer(net), generator=generator)
    curve = []
    for i in range(1, steps + 1):
        loss = step(*task.sample(SELFCHECK_BATCH))
        if not torch.isfinite(loss):
            return curve + [(i, float("nan"))]
        if i % eval_every == 0 or i == steps:
            curve.append((i, eval_accuracy(net, test_x, test_labels)))
    return curve


def selfcheck(models=MODELS, seed=0, log=print, train=True):
    """Shapes, layers, optimiser and a short training run per model; True if all pass."""
    gen = torch.Generator().manual_seed(seed)
    ok = check_layers(gen)
    log(f"locally connected / TF 'same' conv layers vs F.conv2d: {'ok' if ok else 'FAILED'}")
    passed = dense_ref.check_gradient_reaches_only_selected_unit(gen)
    ok &= passed
    log(f"brainprop gradient reaches only the selected unit: {'ok' if passed else 'FAILED'}")
    for name in models:
        passed = check_optimizer(name)
        ok &= passed
        log(f"{name}: weight decay 2*l2 on kernels only: {'ok' if passed else 'FAILED'}")
        for input_shape in ((28, 28, 1), (32, 32, 3)):
            torch.manual_seed(seed)
            got = layer_shapes(build_net(name, input_shape), input_shape)
            want = EXPECTED_SHAPES[(name, input_shape)]
            passed = got == want
            ok &= passed
            log(f"{name} {'x'.join(map(str, input_shape))}: shapes "
                f"{' '.join('x'.join(map(str, s)) for s in got)} "
                f"{'ok' if passed else 'FAILED, expected ' + str(want)}")
    if not train:
        return bool(ok)
    for name in models:
        input_shape = SELFCHECK_INPUT[name]
        task = dense_ref.PrototypeTask(gen, shape=nchw(input_shape))
        test_x, test_labels = task.sample(500)
        log(f"{name}: prototype task at {'x'.join(map(str, input_shape))}, batch "
            f"{SELFCHECK_BATCH}, chance {1.0 / task.classes:.2f}; test accuracy by step:")
        for rule in RULES:
            torch.manual_seed(seed)  # same initial weights for both rules
            curve = train_on_task(name, rule, task, test_x, test_labels,
                                  SELFCHECK_STEPS[name][rule], gen)
            final = curve[-1][1]
            mark = SELFCHECK_PASS[name][rule]
            passed = final >= mark  # False for NaN
            ok &= passed
            points = " ".join(f"{i}:{acc:.2f}" for i, acc in curve)
            log(f"  {rule:9s} {points}  (pass mark {mark:.2f}) "
                f"{'ok' if passed else 'FAILED'}")
    return bool(ok)


if __name__ == "__main__":
    import sys
    sys.exit(0 if selfcheck(log=lambda m: print(m, file=sys.stderr, flush=True)) else 1)
