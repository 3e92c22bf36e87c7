from convergence.stimuli import refresh_manifest


rule stimuli:
    """Materialise one stimulus set (images, captions, labels, ids) as a Zarr store."""
    input:
        files=dataset_files,
        # names and content hashes of the files the set is read from (image folder, CSV and the images it
        # names, ...; convergence.stimuli.content_manifest), rewritten while the DAG is built only when they
        # changed: replacing (even by `cp -p`), adding or editing one reruns this job and what depends on it
        manifest=lambda w: refresh_manifest(dataset_spec(w), f"results/manifests/{w.dataset}.json"),
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
