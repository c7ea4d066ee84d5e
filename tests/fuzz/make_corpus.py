#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): a few small
valid inputs of each format and slightly broken ones, so that libFuzzer starts from files the
readers accept. Deterministic; rerun after changing a format and commit the result:

    python3 tests/fuzz/make_corpus.py

Needs Pillow (Debian python3-pil) for the JPEG seeds. Every file stays a few KB."""
import gzip
import io
import json
import pathlib
import shutil
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
MODELS = HERE.parent.parent / "models"


def put(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def two_parts(first, second):
    """fuzz_common.h's split_two: [u16 LE len(first)][first][second]."""
    assert len(first) < 65536
    return struct.pack("<H", len(first)) + first + second


def idx(dims, payload, type_code=0x08):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx_corpus():
    images = idx([3, 4, 4], bytes((i * 7) % 256 for i in range(48)))
    labels = idx([3], bytes([0, 9, 4]))
    put("fuzz_idx", "valid", two_parts(images, labels))
    put("fuzz_idx", "valid_gzip", two_parts(gz(images), gz(labels)))
    put("fuzz_idx", "gzip_images_plain_labels", two_parts(gz(images), labels))
    put("fuzz_idx", "truncated_payload", two_parts(images[:-5], labels))
    put("fuzz_idx", "truncated_gzip", two_parts(gz(images)[:-6], labels))
    put("fuzz_idx", "label_out_of_range", two_parts(images, idx([3], bytes([0, 10, 1]))))
    put("fuzz_idx", "count_mismatch", two_parts(images, idx([2], bytes([1, 2]))))
    put("fuzz_idx", "huge_dims", two_parts(idx([0xFFFFFFFF, 0xFFFFFFFF, 2], b""), labels))
    put("fuzz_idx", "int_type", two_parts(idx([2, 2], bytes(8), 0x0C), labels))
    # 2 MiB of zeros after a 2x2 array: the gzip reader must stop at the header's size.
    put("fuzz_idx", "gzip_runs_past_header", two_parts(gz(idx([2, 2], bytes(4)) + bytes(2 << 20)), gz(labels)))


def cifar_record(labels, seed):
    return bytes(labels) + bytes((seed + i) % 256 for i in range(3072))


def cifar_corpus():
    names10 = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
    put("fuzz_cifar", "cifar10_one_record", b"\x00" + two_parts(b"", cifar_record([3], 1)))
    put("fuzz_cifar", "cifar10_names", b"\x00" + two_parts(names10, cifar_record([9], 2)))
    put("fuzz_cifar", "cifar10_bad_label", b"\x00" + two_parts(b"", cifar_record([10], 3)))
    put("fuzz_cifar", "cifar10_truncated", b"\x00" + two_parts(b"", cifar_record([1], 4)[:-1]))
    put("fuzz_cifar", "cifar10_too_few_names", b"\x00" + two_parts(b"a\nb\r\n\n c \n", cifar_record([0], 5)))
    put("fuzz_cifar", "cifar100_fine", b"\x01" + two_parts(b"", cifar_record([19, 99], 6)))
    put("fuzz_cifar", "cifar100_coarse", b"\x02" + two_parts(b"", cifar_record([7, 42], 7)))
    put("fuzz_cifar", "cifar100_bad_coarse", b"\x02" + two_parts(b"", cifar_record([20, 1], 8)))


def jpeg_corpus():
    from PIL import Image  # Debian python3-pil

    def image(mode, size=(8, 6)):
        img = Image.new(mode, size)
        w, h = size
        for y in range(h):
            for x in range(w):
                if mode == "L":
                    img.putpixel((x, y), (x * 30 + y * 10) % 256)
                elif mode == "CMYK":
                    img.putpixel((x, y), (x * 30 % 256, y * 40 % 256, 60, 20))
                else:
                    img.putpixel((x, y), (x * 30 % 256, y * 40 % 256, 128))
        return img

    def jpeg(img, **options):
        out = io.BytesIO()
        img.save(out, "JPEG", **options)
        return out.getvalue()

    rgb = image("RGB")
    put("fuzz_image_folder", "rgb_444.jpg", jpeg(rgb, quality=90, subsampling=0))
    put("fuzz_image_folder", "rgb_420.jpg", jpeg(rgb, quality=75, subsampling=2))
    put("fuzz_image_folder", "rgb_422_odd_size.jpg", jpeg(image("RGB", (13, 7)), quality=80, subsampling=1))
    put("fuzz_image_folder", "gray.jpg", jpeg(image("L"), quality=90))
    put("fuzz_image_folder", "progressive.jpg", jpeg(rgb, quality=85, progressive=True))
    put("fuzz_image_folder", "optimized.jpg", jpeg(rgb, quality=60, optimize=True))
    put("fuzz_image_folder", "restart_markers.jpg", jpeg(image("RGB", (32, 16)), quality=70, restart_marker_blocks=1))
    put("fuzz_image_folder", "cmyk_adobe.jpg", jpeg(image("CMYK"), quality=90))
    whole = jpeg(rgb, quality=90, subsampling=0)
    put("fuzz_image_folder", "truncated.jpg", whole[: len(whole) * 2 // 3])
    put("fuzz_image_folder", "header_only.jpg", whole[:200])
    put("fuzz_image_folder", "not_a_jpeg.jpg", b"\xff\xd8\xff\xe0 not really")


CACHE_MAGIC = b"BPIMGCAC"


def image_cache(height, width, channels, names, train_labels, test_labels, fingerprint=0x1234):
    names_block = b"".join(struct.pack("<I", len(n)) + n for n in names)
    n = len(train_labels) + len(test_labels)
    header = CACHE_MAGIC + struct.pack("<IIQIIIIQQQ", 0x01020304, 1, fingerprint, height, width, channels,
                                       len(names), len(train_labels), len(test_labels), len(names_block))
    body = header + names_block
    body += b"".join(struct.pack("<i", label) for label in train_labels + test_labels)
    body += bytes((i * 13) % 256 for i in range(n * height * width * channels))
    return body + struct.pack("<I", zlib.crc32(body))


def image_cache_corpus():
    put("fuzz_image_cache", "two_classes", image_cache(2, 3, 3, [b"ant", b"cat"], [0, 1, 1], [1]))
    put("fuzz_image_cache", "gray_one_class", image_cache(4, 4, 1, [b"only"], [0, 0], []))
    put("fuzz_image_cache", "bad_label", image_cache(1, 1, 3, [b"a"], [0, 1], [0]))
    whole = image_cache(2, 2, 3, [b"x", b"y", b"z"], [2, 1, 0], [0, 1])
    put("fuzz_image_cache", "truncated", whole[:-9])
    put("fuzz_image_cache", "header_only", whole[:64])


def safetensors(tensors, metadata=None, checksums=True):
    header, data = {}, b""
    meta = dict(metadata or {})
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        if checksums:
            meta["brainprop.crc32." + name] = "%08x" % zlib.crc32(raw)
        data += raw
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_corpus():
    w = struct.pack("<6f", *[0.5, -1.0, 2.0, 0.0, 3.25, -0.125])
    b = struct.pack("<2d", 1.0, -2.0)
    step = struct.pack("<i", 7)
    mask = bytes([1, 0, 1])
    tensors = [("dense0.w", "F32", [2, 3], w), ("dense0.b", "F64", [2], b), ("step", "I32", [], step),
               ("mask", "U8", [3], mask)]
    put("fuzz_safetensors", "checkpoint", safetensors(tensors, {"format": "brainprop", "epoch": "3"}))
    put("fuzz_safetensors", "no_checksums", safetensors(tensors[:2], checksums=False))
    put("fuzz_safetensors", "empty_tensor", safetensors([("e", "F32", [0, 4], b"")]))
    put("fuzz_safetensors", "metadata_only", safetensors([], {"k": "v"}))
    good = safetensors(tensors[:1])
    put("fuzz_safetensors", "truncated", good[:-3])
    bad = bytearray(good)
    bad[-1] ^= 0x40
    put("fuzz_safetensors", "bad_crc", bytes(bad))
    put("fuzz_safetensors", "unknown_dtype", safetensors([("x", "BF16", [1], b"\0\0")], checksums=False))


def model_json_corpus():
    for path in sorted(MODELS.glob("*.json")):
        put("fuzz_model_json", path.name, path.read_bytes())
    put("fuzz_model_json", "minimal.json", b'{"name": "m", "layers": []}')
    put("fuzz_model_json", "all_layers.json", json.dumps({
        "name": "all", "description": "every layer type", "init_std": 0.01, "l2": 0.0001,
        "layers": [{"type": "conv2d", "filters": 4, "kernel": [3, 2], "strides": 1, "padding": "same", "bias": True},
                   {"type": "batchnorm", "momentum": 0.9, "epsilon": 0.001}, {"type": "relu"},
                   {"type": "maxpool2d", "pool": 2, "strides": 2}, {"type": "local2d", "filters": 2, "kernel": 3},
                   {"type": "dropout", "rate": 0.25}, {"type": "flatten"},
                   {"type": "dense", "units": 16, "bias": False, "init_std": 0.1, "l2": 0}],
        "output": {"bias": True, "init_std": 0.05}, "training": {"batch_size": 32, "lr": 0.01}},
        indent=1).encode())
    put("fuzz_model_json", "duplicate_key.json", b'{"name": "d", "layers": [{"type": "dense", "units": 1, "units": 2}]}')
    put("fuzz_model_json", "unknown_key.json", b'{"name": "u", "layers": [], "extra": 1}')
    put("fuzz_model_json", "bad_units.json", b'{"name": "b", "layers": [{"type": "dense", "units": -3}]}')
    put("fuzz_model_json", "truncated.json", b'{"name": "t", "layers": [{"type": "den')


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    idx_corpus()
    cifar_corpus()
    jpeg_corpus()
    image_cache_corpus()
    safetensors_corpus()
    model_json_corpus()
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {sum(1 for p in CORPUS.rglob('*') if p.is_file())} files, {total} bytes, under {CORPUS}")


if __name__ == "__main__":
    main()
