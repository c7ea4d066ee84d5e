#!/usr/bin/env python3
"""Float64 reference convolutions from PyTorch (CPU) for test_cudnn_vs_torch.

Usage: torch_conv_reference.py DIR

DIR/manifest.json lists cases: {"cases": [{"name", "batch", "in_h", "in_w", "in_c", "out_c",
"kernel_h", "kernel_w", "stride_h", "stride_w", "pad_top", "pad_bottom", "pad_left",
"pad_right", "out_h", "out_w"}]}. For each case NAME the inputs are raw little-endian float32:
NAME.x (NHWC), NAME.w ([out_c, kernel_h, kernel_w, in_c]) and NAME.dy (NHWC, the gradient of
the output). TensorFlow-style padding: zeros are added to the input (pad_top rows above,
pad_bottom below, ...), then a 'valid' cross-correlation with the given strides runs.

Writes raw little-endian float64: NAME.y (NHWC), NAME.dx (NHWC), NAME.dw ([out_c, kh, kw, in_c]),
and the same ops on absolute values (NAME.y_abs, NAME.dx_abs, NAME.dw_abs): the sum of the
magnitudes of the terms behind each value, which the test's tolerance is relative to.
Exits non-zero on any inconsistency (so the C++ test fails rather than skips).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(path, shape):
    data = np.fromfile(path, dtype="<f4")
    expected = int(np.prod(shape))
    if data.size != expected:
        raise SystemExit(f"{path}: {data.size} floats, expected {expected} for shape {shape}")
    return torch.from_numpy(data.astype(np.float64).reshape(shape))


def save(path, tensor):
    tensor.detach().contiguous().numpy().astype("<f8").tofile(path)


def conv_and_grads(x_nchw, w_oihw, dy_nchw, case):
    """y = conv(pad(x), w) and the gradients of sum(y * dy) w.r.t. x and w, all float64."""
    x = x_nchw.clone().requires_grad_(True)
    w = w_oihw.clone().requires_grad_(True)
    padded = F.pad(x, (case["pad_left"], case["pad_right"], case["pad_top"], case["pad_bottom"]))
    y = F.conv2d(padded, w, stride=(case["stride_h"], case["stride_w"]))
    want = (case["batch"], case["out_c"], case["out_h"], case["out_w"])
    if tuple(y.shape) != want:
        raise SystemExit(f"{case['name']}: torch gives output {tuple(y.shape)}, the test expects {want}")
    (y * dy_nchw).sum().backward()
    return y, x.grad, w.grad


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)
    torch.set_default_dtype(torch.float64)
    for case in manifest["cases"]:
        name = os.path.join(root, case["name"])
        b, ih, iw, ic = case["batch"], case["in_h"], case["in_w"], case["in_c"]
        oc, kh, kw = case["out_c"], case["kernel_h"], case["kernel_w"]
        oh, ow = case["out_h"], case["out_w"]
        x = load(name + ".x", (b, ih, iw, ic)).permute(0, 3, 1, 2)  # NHWC -> NCHW
        w = load(name + ".w", (oc, kh, kw, ic)).permute(0, 3, 1, 2)  # KRSC -> OIHW
        dy = load(name + ".dy", (b, oh, ow, oc)).permute(0, 3, 1, 2)
        for suffix, (xs, ws, dys) in (("", (x, w, dy)), ("_abs", (x.abs(), w.abs(), dy.abs()))):
            y, dx, dw = conv_and_grads(xs, ws, dys, case)
            save(name + ".y" + suffix, y.permute(0, 2, 3, 1))
            save(name + ".dx" + suffix, dx.permute(0, 2, 3, 1))
            save(name + ".dw" + suffix, dw.permute(0, 2, 3, 1))
    with open(os.path.join(root, "done"), "w") as f:
        f.write(f"torch {torch.__version__}\n")


if __name__ == "__main__":
    main()
