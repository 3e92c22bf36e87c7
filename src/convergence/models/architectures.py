"""What the config can know about a hub model's architecture without loading it (no deep-learning import).

Building the DAG must not import timm or torch, so the facts the config checks need before any job live here
as rules on timm's architecture names. A rule answers ``None`` when it does not know; then the embed job
checks the built model itself (:func:`convergence.models.timm_source.has_class_token`).
"""

from __future__ import annotations

import re

#: timm ViT families built without a class token (``class_token=False``): SigLIP (attention-pool head),
#: global-average-pool ViTs (``*_gap_*``, ``*_map_*``), residual-post-norm (``*_rpn_*``) and the relative-
#: position ViTs except their ``*_cls*`` variants. Checked against timm's own models in tests/test_timm_pooling.py.
_NO_CLASS_TOKEN = re.compile(r"siglip|_gap_|_map_|_rpn_|^vit_s?relpos_(?!.*_cls)")


def timm_class_token(name: str, model_kwargs: dict | None = None) -> bool | None:
    """Whether timm model ``name`` (``arch`` or ``arch.tag``) has a class token: ``model_kwargs``'
    ``class_token`` when given, else False for the families in :data:`_NO_CLASS_TOKEN` and None (not known
    from the name; the job checks the built model) for any other."""
    if model_kwargs and "class_token" in model_kwargs:
        return bool(model_kwargs["class_token"])
    arch = str(name).split(".")[0]
    return False if _NO_CLASS_TOKEN.search(arch) else None
