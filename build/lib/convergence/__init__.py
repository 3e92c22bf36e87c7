"""convergence: measure how similarly neural networks represent the same stimuli.

The library behind the Snakemake workflow. Every step's logic lives here, importable and testable
without Snakemake: ``stimuli`` materialises stimulus sets, ``models`` loads encoders from one registry,
``embed`` runs stimuli through them, ``store`` writes labelled Zarr stores atomically, ``metrics``,
``kernels`` and ``alignment`` compare representations, ``plots`` draws the figures.
"""

__version__ = "0.1.0"
