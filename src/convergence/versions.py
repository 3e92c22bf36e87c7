"""Version of each workflow step's science.

Each rule passes its step's number as a parameter, so Snakemake reruns that step (and only it) when the
number changes. Bump a step's number whenever a code change alters the numbers it stores; editing code
without bumping reruns nothing (see profiles/default: Snakemake's mtime-based code trigger is off).
This module is imported when the DAG is built, so it must stay free of heavy imports.
"""

STEP_VERSIONS = {
    "stimuli": 1,
    "embed": 1,
    "kernel": 1,
    "alignment": 4,  # 4: tau, calibrated, q_value; jackknife intervals (convergence.inference)
    "competence": 2,  # 2: text_bits_per_byte rows (the fixed competence text)
    "lowlevel": 1,
    "layers": 2,  # 2: read-out scales each layer by one RMS, not per feature
    "dispersion": 1,
    "dispersion_alignment": 2,  # 2: jackknife intervals; low/high tau, calibrated and q-values
    "consistency": 1,
    "sample_size": 3,  # 3: tau, calibrated, q_value; jackknife intervals
    "taxonomy": 1,
    "prh": 3,  # 2: calibrated alignment and q-value columns; 3: each model's objective, the fits over trained models
}
