"""The metric registry: every representational-similarity measure declared once.

Each :class:`Metric` names its pair function in :mod:`convergence.metrics` (the definition users import
and the tests check against independent formulas), its all-pairs engine in
:mod:`convergence.pairwise.measures` (the same measure over many models and layers from cached kernel
stores), what it reads from a kernel store (``needs``), its parameters with their defaults and the config
keys that set them, its range and its direction. Everything that lists metrics reads this table: the
config schema's allowed names, the kernel rule (how many neighbours, whether Grams are stored), the
all-pairs alignment, the pair-result cache, the figures and the README's metric table.

This module imports nothing but the standard library, so building the workflow's DAG stays cheap; the
functions and engines are imported when first used.

Every measure follows the two conventions of :mod:`convergence.metrics._checks`: a representation constant
across stimuli raises one ``ValueError`` in the pair function (NaN in the engine), and the features' scale
changes nothing where the definition ignores it (every measure here but ``cka_rbf`` with an absolute
``sigma``); ``tests/test_metric_conventions.py`` checks both for every entry.

Adding a measure: write its pair function in ``convergence.metrics``, its engine in
``convergence.pairwise.measures``, and one :class:`Metric` entry below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from math import pi
from typing import Any

#: What a measure reads from a kernel store: the top-k neighbour lists, the stored centred Gram, or the
#: preprocessed features (from which it builds what it needs).
NEEDS = ("neighbors", "gram", "features")


@dataclass(frozen=True)
class Param:
    """One parameter of a measure: its name, its default (``None``: no default), what it means, and the
    key of the config settings that sets it in the workflow (if any; ``config.metric_settings``: the
    ``alignment`` section with ``kernels.k``)."""

    name: str
    default: Any
    doc: str
    config_key: str | None = None


@dataclass(frozen=True)
class Metric:
    """One similarity measure (see the module docstring)."""

    name: str
    label: str  # a short human description for figures and tables
    function: str  # "module:attr" of the pair function
    engine: str  # "module:attr" of the all-pairs engine class
    needs: str  # one of NEEDS
    range: tuple[float, float]
    higher_is_better: bool = True
    symmetric: bool = True
    params: tuple[Param, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments that select this measure ...
    engine_only: tuple[str, ...] = ()  # ... of which these go to the engine only (the pair function is specific)
    note: str = ""  # how it differs from a reference implementation, where it does

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"metric {self.name!r}: needs={self.needs!r}; allowed: {NEEDS}")

    @property
    def pair_function(self) -> Callable[..., float]:
        """``f(x, y, **params) -> float`` for one pair of (n, d) feature matrices."""
        fn = _resolve(self.function)
        fixed = {key: value for key, value in self.fixed.items() if key not in self.engine_only}
        if not fixed:
            return fn

        def measure(x, y, **params):
            return fn(x, y, **fixed, **params)

        measure.__name__ = self.name
        measure.__doc__ = f"{self.label}: ``{self.function}`` with {fixed}."
        return measure

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict:
        """The parameters that have a default."""
        return {p.name: p.default for p in self.params if p.default is not None}

    def check_params(self, params: Mapping) -> dict:
        """``params`` if every key is a parameter of this measure; else one ``ValueError`` naming the allowed."""
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            raise ValueError(f"metric {self.name!r} takes no parameter(s) {unknown}; "
                             f"allowed: {list(self.param_names) or 'none'}")
        return dict(params)

    def from_config(self, section: Mapping) -> dict:
        """The parameters this measure takes from a config section (and only those, so that changing ``k``
        never reruns CKA)."""
        return {p.name: section[p.config_key] for p in self.params if p.config_key and p.config_key in section}

    def engine_class(self):
        return _resolve(self.engine)

    def make_engine(self, **params):
        """The all-pairs engine for this measure with ``params`` (validated against :attr:`params`)."""
        params = self.check_params(params)
        return self.engine_class()(**dict(self.fixed), **params)


def _resolve(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_K = Param("k", 10, "neighbours per stimulus (1 <= k <= n - 1)", config_key="k")
_ENGINES = "convergence.pairwise.measures"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("mutual_knn", "mutual k-NN", "convergence.metrics.knn:mutual_knn", f"{_ENGINES}:KnnMetric",
               "neighbors", (0.0, 1.0), params=(_K,), fixed={"kind": "mutual"}, engine_only=("kind",)),
        Metric("cycle_knn", "cycle k-NN", "convergence.metrics.knn:cycle_knn", f"{_ENGINES}:KnnMetric",
               "neighbors", (0.0, 1.0), symmetric=False, params=(_K,), fixed={"kind": "cycle"}, engine_only=("kind",)),
        Metric("jaccard_knn", "Jaccard k-NN", "convergence.metrics.knn:jaccard_knn", f"{_ENGINES}:KnnMetric",
               "neighbors", (0.0, 1.0), params=(_K,), fixed={"kind": "jaccard"}, engine_only=("kind",)),
        Metric("cka_linear", "linear CKA", "convergence.metrics.cka:cka", f"{_ENGINES}:CkaMetric", "gram",
               (0.0, 1.0), fixed={"kernel": "linear"}),
        Metric("cka_linear_unbiased", "linear CKA (unbiased HSIC)", "convergence.metrics.cka:cka",
               f"{_ENGINES}:CkaMetric", "gram", (-1.0, 1.0), fixed={"kernel": "linear", "unbiased": True},
               note="the PRH code adds 1e-6 to the denominator, here it is exact: they differ by "
                    "1e-6 / sqrt(HSIC_xx HSIC_yy) relative (measured on 400 unit-norm stimuli: about 1e-5 for "
                    "unbiased CKA, 1e-4 for CKNNA with k = 10)"),
        Metric("cka_rbf", "RBF CKA", "convergence.metrics.cka:cka", f"{_ENGINES}:CkaMetric", "features",
               (0.0, 1.0), fixed={"kernel": "rbf"},
               params=(Param("sigma", None, "absolute RBF bandwidth", config_key="rbf_sigma"),
                       Param("sigma_factor", None, "bandwidth as a factor of the median distance (instead of sigma)"),
                       Param("unbiased", False, "unbiased HSIC", config_key="rbf_unbiased"))),
        Metric("cknna", "CKNNA", "convergence.metrics.cka:cknna", f"{_ENGINES}:CknnaMetric", "neighbors",
               (-1.0, 1.0), symmetric=False, params=(Param("k", 10, "neighbours per stimulus (2 <= k <= n - 1)", config_key="k"),),
               note="the PRH code adds 1e-6 to the denominator, here it is exact: they differ by "
                    "1e-6 / sqrt(HSIC_xx HSIC_yy) relative (measured on 400 unit-norm stimuli: about 1e-5 for "
                    "unbiased CKA, 1e-4 for CKNNA with k = 10)"),
        Metric("svcca", "SVCCA", "convergence.metrics.subspace:svcca", f"{_ENGINES}:SvccaMetric", "features",
               (0.0, 1.0), params=(Param("variance", 0.99, "share of variance the principal subspace keeps"),)),
        Metric("procrustes", "angular Procrustes distance", "convergence.metrics.subspace:procrustes_distance",
               f"{_ENGINES}:ProcrustesMetric", "features", (0.0, pi / 2), higher_is_better=False),
        Metric("rsa", "RSA", "convergence.metrics.rsa:rsa", f"{_ENGINES}:RsaMetric", "features", (-1.0, 1.0),
               params=(Param("distance", "correlation", "RDM distance: correlation, euclidean or sqeuclidean"),
                       Param("compare", "spearman", "RDM comparison: spearman or pearson")),
               note="distance sqeuclidean (squared distance / features) is rsatoolbox's 'euclidean'; "
                    "euclidean is the plain distance (same Spearman RSA, different Pearson RSA)"),
    )
}

#: The measures' names, in registry order.
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def get_metric(name: str) -> Metric:
    """The registry entry ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        import difflib

        close = difflib.get_close_matches(str(name), METRIC_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"metric={name!r} is not known{hint}; allowed: {', '.join(map(repr, METRIC_NAMES))}") from None


def kernel_needs(metrics: Iterable[str], section: Mapping | None = None) -> dict:
    """What the kernel stores must hold for ``metrics`` (configured with ``section``): the largest ``k`` any
    neighbour-based measure asks for (``None`` when none does) and whether centred Grams are used."""
    specs = [get_metric(m) for m in metrics]
    ks = [dict(m.defaults(), **m.from_config(section or {})).get("k") for m in specs if m.needs == "neighbors"]
    return {"k": max(ks) if ks else None, "gram": any(m.needs == "gram" for m in specs)}


def markdown_table() -> str:
    """The README's metric table, generated from the registry."""
    rows = ["| metric | what | reads | parameters (default) | range | more similar | note |",
            "|---|---|---|---|---|---|---|"]
    for m in METRICS.values():
        params = ", ".join(f"`{p.name}` ({p.default})" if p.default is not None else f"`{p.name}`" for p in m.params)
        lo, hi = m.range
        rng = f"[{lo:g}, {'pi/2' if hi == pi / 2 else f'{hi:g}'}]"
        rows.append(f"| `{m.name}` | {m.label}{'' if m.symmetric else ' (not symmetric)'} | {m.needs} | "
                    f"{params or '-'} | {rng} | {'higher' if m.higher_is_better else 'lower'} | {m.note or '-'} |")
    return "\n".join(rows) + "\n"

