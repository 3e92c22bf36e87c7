rule stimuli:
    """Materialise one stimulus set (images, captions, labels, ids) as a Zarr store."""
    input:
        dataset_files,
    output:
        directory("results/stimuli/{dataset}.zarr"),
    log:
        "logs/stimuli/{dataset}.log",
    conda:
        "../../envs/convergence.yaml"
    params:
        spec=dataset_spec,
        version=STEP_VERSIONS["stimuli"],
    script:
        "../../scripts/stimuli.py"
