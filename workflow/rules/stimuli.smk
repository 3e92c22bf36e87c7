from convergence.stimuli import content_manifest, write_manifest


def dataset_manifest(wildcards):
    """The manifest of the files a stimulus set reads (names, sizes, modification times; see
    convergence.stimuli.content_manifest), written while the DAG is built and only when it changed: as an
    input it reruns `stimuli` (and what depends on it) exactly when an image is replaced, added or removed,
    or a CSV or an image it names is edited."""
    path = f"results/manifests/{wildcards.dataset}.json"
    write_manifest(content_manifest(dataset_spec(wildcards), base_dir=Path.cwd()), path)
    return path


rule stimuli:
    """Materialise one stimulus set (images, captions, labels, ids) as a Zarr store."""
    input:
        files=dataset_files,
        manifest=dataset_manifest,
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
