"""Figures. Each function takes stored numbers and output paths; none computes science."""

import matplotlib

matplotlib.use("Agg")
