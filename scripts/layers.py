"""rule layers: layer x layer matrices, best matches, diagonal test, depth profile, smoothness and the claims."""
import json

from convergence.analyses import layers as L
from convergence.runtime import logged
from convergence.store import open_store, write_json, write_store, write_table

with logged(snakemake.log[0], threads=snakemake.threads, outputs=snakemake.output):
    o = snakemake.params.options
    kernels = {name: open_store(path) for name, path in snakemake.input.items() if name != "readout"}
    scores = L.layer_matrices(kernels, snakemake.params.metric, params=snakemake.params.metric_params,
                              cache_dir=snakemake.params.pair_cache, model_labels=snakemake.params.labels)
    diagonal = L.diagonal_test(scores, tolerance=o["tolerance"], n_permutations=o["n_permutations"],
                               n_bootstrap=o["n_bootstrap"], ci=o["ci"], seed=o["seed"])
    per_pair, profile = L.depth_profile(scores, n_bins=o["n_bins"])
    steps, curves, smooth = L.smoothness(scores, n_bins=o["n_bins"], n_bootstrap=o["n_bootstrap"],
                                         n_permutations=o["n_permutations"], ci=o["ci"], seed=o["seed"])
    readout = json.loads(open(snakemake.input.readout).read())
    write_store(scores, snakemake.output.matrices)
    write_table(L.best_matches(scores), snakemake.output.matches)
    write_table(per_pair, snakemake.output.profile)
    write_table(profile, snakemake.output.profile_summary)
    write_table(steps, snakemake.output.steps)
    write_table(curves, snakemake.output.curves)
    write_json({"metric": snakemake.params.metric, "n_stimuli": scores.attrs["n_stimuli"],
                "layers": {m: len(k.attrs["layers"]) for m, k in kernels.items()}, "diagonal": diagonal,
                "smoothness": smooth, "claims": L.claims(diagonal, profile, smooth, readout)},
               snakemake.output.summary)
