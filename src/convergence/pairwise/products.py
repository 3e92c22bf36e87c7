"""One model's cached products (a kernel store) re-expressed on the stimuli a comparison uses.

Comparisons join models on stimulus ids, never on row position: ``common_stimuli`` fixes the shared ids
(sorted, so the order never depends on which models take part), and ``ModelProducts`` maps one kernel
store onto them:

- the same stimulus set in another order: neighbour lists are relabelled and the stored Gram is read
  through an index (cheap, nothing recomputed);
- a strict subset (other models lack some stimuli, or the caller sweeps n): neighbours are recomputed
  from the stored features on the subset, once per model, and the Gram (if needed) is recomputed from the
  features in memory when n is at most the store's ``kernel_gram_max_n``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..kernels import check_kernel, feature_var, has_gram, is_constant, stimulus_ids
from ..metrics import knn_indices


def common_stimuli(kernels: Mapping[str, xr.Dataset], models: Sequence[str], stimuli=None) -> np.ndarray:
    """The stimulus ids shared by every model in ``models``, sorted; optionally restricted to ``stimuli``."""
    shared = None
    for name in models:
        ids = set(stimulus_ids(kernels[name]).tolist())
        shared = ids if shared is None else shared & ids
    shared = shared or set()
    if stimuli is not None:
        wanted = [str(s) for s in np.asarray(stimuli).ravel()]
        missing = [s for s in wanted if s not in shared]
        if missing:
            raise ValueError(f"{len(missing)} requested stimuli are not held by every model (first: {missing[:3]}); "
                             f"{len(shared)} ids are shared by {list(models)}")
        shared = set(wanted)
    return np.asarray(sorted(shared), dtype=object)


def stimulus_digest(ids: np.ndarray) -> str:
    """A short content hash of an ordered stimulus id list (for provenance)."""
    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()[:16]


@dataclass
class ModelProducts:
    """The products of one model on the comparison's stimuli (all arrays indexed by the common order).

    Attributes
    ----------
    name : str
    layers : list of str, shallow to deep
    depths : array (L,)
    n : int
        Number of common stimuli.
    k_max : int
        Neighbours available per stimulus.
    neighbors : array (L, n, k_max) of int64
        Positions into the common order.
    gram_max_n : int
        The store's threshold for n x n matrices.
    constant : array (L,) of bool
        Layers constant across the common stimuli (``kernels.is_constant``): every score involving one is
        NaN. On the store's full stimulus set read from its ``kernel_constant_layers``; on a subset (or for
        a store written before that attribute existed) checked on the features.
    """

    name: str
    kernel: xr.Dataset
    positions: np.ndarray  # common row r is the store's row positions[r]
    full: bool  # the common set is the store's whole stimulus set
    layers: list[str] = field(init=False)
    depths: np.ndarray = field(init=False)
    n: int = field(init=False)
    k_max: int = field(init=False)
    neighbors: np.ndarray = field(init=False)
    gram_max_n: int = field(init=False)
    constant: np.ndarray = field(init=False)

    def __post_init__(self):
        attrs = self.kernel.attrs
        self.layers = [str(layer) for layer in attrs["layers"]]
        self.depths = np.asarray(self.kernel["depth"].values, dtype=np.float64)
        self.n = int(self.positions.size)
        self.gram_max_n = int(attrs.get("kernel_gram_max_n", 5000))
        self._identity = self.full and np.array_equal(self.positions, np.arange(self.n))
        self._features: dict[int, np.ndarray] = {}
        stored = np.asarray(self.kernel["neighbors"].values)
        if self.full:
            inverse = np.empty(self.n, dtype=np.int64)
            inverse[self.positions] = np.arange(self.n)
            self.neighbors = inverse[stored[:, self.positions, :]]
            self.k_max = stored.shape[2]
        else:
            self.k_max = min(stored.shape[2], self.n - 1)
            self.neighbors = np.stack([knn_indices(self.features(i), self.k_max) for i in range(len(self.layers))])
        recorded = attrs.get("kernel_constant_layers")
        if self.full and recorded is not None:
            names = {str(x) for x in np.asarray(recorded, dtype=object).ravel()}
            self.constant = np.array([layer in names for layer in self.layers], dtype=bool)
        else:  # a subset can be constant where the full set is not
            self.constant = np.array([is_constant(self.features(i)) for i in range(len(self.layers))], dtype=bool)

    @classmethod
    def from_kernel(cls, name: str, kernel: xr.Dataset, ids: np.ndarray) -> ModelProducts:
        """Map ``kernel`` onto the common stimulus ids ``ids``."""
        check_kernel(kernel, name)
        own = stimulus_ids(kernel)
        index = {s: i for i, s in enumerate(own)}
        positions = np.fromiter((index[str(s)] for s in ids), dtype=np.int64, count=len(ids))
        return cls(name, kernel, positions, full=len(ids) == own.size)

    def features(self, layer: int, dtype=np.float64) -> np.ndarray:
        """Preprocessed features (n, d) of layer position ``layer`` in the common order (read from the store
        once, then kept in its stored float32)."""
        if layer not in self._features:
            var = self.kernel[feature_var(self.layers[layer])]
            values = np.asarray(var.values)
            self._features[layer] = values if self._identity else values[self.positions]
        return self._features[layer].astype(dtype)

    def centred_features(self, layer: int) -> np.ndarray:
        x = self.features(layer)
        return x - x.mean(axis=0)

    @property
    def stored_gram(self) -> bool:
        """Whether the store's Gram can be used as is (same stimulus set)."""
        return self.full and has_gram(self.kernel)

    def gram_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the stored centred Gram of ``layer`` in the common order (float32)."""
        var = self.kernel.variables["gram"]  # the Variable: no DataArray built per block
        if self._identity:
            return np.asarray(var[layer, start:stop].values)
        rows = np.asarray(var.isel(layer=layer, stimulus=self.positions[start:stop]).values)
        return rows[:, self.positions]

    def gram(self, layer: int) -> np.ndarray:
        """The full centred Gram (n, n) float64 of ``layer``: the stored one, else from the features."""
        if self.stored_gram:
            return self.gram_rows(layer, 0, self.n).astype(np.float64)
        xc = self.centred_features(layer)
        return xc @ xc.T
