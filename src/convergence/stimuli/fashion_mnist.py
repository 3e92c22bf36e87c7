"""Source ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` (70,000 28x28 greyscale images, 10 named
classes); ids ``train-00000`` ... and ``test-00000`` ....

Listing reads only the label files; the decoder streams the gzip-compressed image files forward, reading
the kept rows only (one pass over each file, whatever the subsample), so memory does not grow with n."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .images import StimulusError, _missing_debian, gray_to_rgb
from .registry import Listing

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
SPLITS = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _files(spec: dict) -> list[tuple[str, Path, Path]]:
    split = spec.get("split", "all")
    if split not in SPLITS:
        raise StimulusError(f"fashion_mnist split must be one of {sorted(SPLITS)}, got {split!r}")
    root = Path(spec.get("path", FASHION_MNIST_DIR))
    out = []
    for prefix in SPLITS[split]:
        img, lab = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
        for p in (img, lab):
            if not p.is_file():
                raise _missing_debian("fashion_mnist", p)
        out.append(("train" if prefix == "train" else "test", img, lab))
    return out


def list_stimuli(spec: dict) -> Listing:
    ids, refs, labels = [], [], []
    for part, (name, _img, lab) in enumerate(_files(spec)):
        labs = _read_idx(lab)
        ids += [f"{name}-{i:05d}" for i in range(len(labs))]
        refs += [(part, i) for i in range(len(labs))]
        labels += [FASHION_MNIST_CLASSES[int(c)] for c in labs]
    return Listing(ids=ids, refs=refs, labels=labels)


class _IdxRows:
    """Rows of one gzip-compressed IDX file read on request, the file streamed forward (rewound only when
    a row before the last one read is asked for)."""

    def __init__(self, path: Path):
        self.path = path
        self.fh = gzip.open(path, "rb")
        head = self.fh.read(4)
        ndim = head[3]
        dims = [int.from_bytes(self.fh.read(4), "big") for _ in range(ndim)]
        self.shape = tuple(dims[1:])
        self.offset = 4 + 4 * ndim
        self.row_bytes = int(np.prod(self.shape))

    def read(self, row: int) -> np.ndarray:
        self.fh.seek(self.offset + row * self.row_bytes)
        data = self.fh.read(self.row_bytes)
        if len(data) != self.row_bytes:
            raise StimulusError(f"fashion_mnist: {self.path} ends before row {row}")
        return np.frombuffer(data, np.uint8).reshape(self.shape)


def decoder(spec: dict):
    files = _files(spec)
    readers: dict[int, _IdxRows] = {}

    def decode(refs) -> np.ndarray:
        out = np.zeros((len(refs), 28, 28), np.uint8)
        for i, (part, row) in enumerate(refs):
            if part not in readers:
                readers[part] = _IdxRows(files[part][1])
            out[i] = readers[part].read(int(row))
        return gray_to_rgb(out)

    return decode


def content_files(spec: dict, here) -> list:
    root = here(spec.get("path", FASHION_MNIST_DIR))
    prefixes = {"train": ("train",), "test": ("t10k",)}.get(spec.get("split", "all"), ("train", "t10k"))
    return [(str(root / f"{p}-{kind}-idx{d}-ubyte.gz"), root / f"{p}-{kind}-idx{d}-ubyte.gz")
            for p in prefixes for kind, d in (("images", 3), ("labels", 1))]
