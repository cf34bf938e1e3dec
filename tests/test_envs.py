"""Per-rule conda environments, checked statically (conda channels are out of reach here).

Every rule has log, benchmark and an environment; every third-party package that the rule's script,
or the library modules it imports, uses is in that environment; every package there is pinned, and
pinned to the version that `make` installs (requirements.txt).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
SCRIPTS = ROOT / "workflow" / "scripts"

# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "umap": "umap-learn", "yaml": "pyyaml"}
# packages used without an import statement: xarray reaches Zarr stores through zarr and dask
IMPLICIT = {"latentsky.stores": {"zarr", "dask"}}


def parse_rules():
    """rule name -> {directive: first string value} for every rule of every .smk file."""
    rules = {}
    for path in [ROOT / "Snakefile", *sorted(RULES.glob("*.smk"))]:
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            name, body = block.split(":", 1)
            body = body.split("\n\n\n")[0]
            directives = {}
            for directive in ("log", "benchmark", "conda", "script", "threads", "resources"):
                match = re.search(rf"^    {directive}:\s*\n?\s*\"?([^\n\"]*)", body, re.M)
                if match:
                    directives[directive] = match.group(1).strip()
            rules[name.strip()] = directives
    return rules


def pins():
    table = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            table[name.lower()] = version
    return table


def imports_of(path: Path, seen: set[str]) -> set[str]:
    """Top-level third-party distributions used by a script and, recursively, by latentsky modules."""
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                base = "latentsky" + ("." + node.module if node.module else "")
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "latentsky":
                module = name if name != "latentsky" else "latentsky.__init__"
                found |= IMPLICIT.get(module, set())
                file = SCRIPTS / (module.replace(".", "/") + ".py")
                if file.exists() and module not in seen:
                    seen.add(module)
                    found |= imports_of(file, seen)
            elif top not in sys.stdlib_module_names and top != "snakemake":
                found.add(DISTRIBUTION.get(top, top).lower())
    return found


def env_packages(env_file: Path) -> dict[str, str]:
    env = yaml.safe_load(env_file.read_text())
    packages = {}
    for dependency in env["dependencies"]:
        entries = dependency["pip"] if isinstance(dependency, dict) else [dependency]
        for entry in entries:
            name, _, version = re.split(r"(==|=)", entry, maxsplit=1)
            packages[name.lower()] = version
    return packages


RULE_TABLE = parse_rules()
SCRIPTED = {name: d for name, d in RULE_TABLE.items() if "script" in d}


def test_rules_were_found():
    assert len(SCRIPTED) >= 15, sorted(RULE_TABLE)


@pytest.mark.parametrize("rule", sorted(SCRIPTED))
def test_rule_is_honest_about_itself(rule):
    directives = SCRIPTED[rule]
    for directive in ("log", "benchmark", "conda", "threads", "resources"):
        assert directive in directives, f"rule {rule} has no {directive}"
    assert directives["log"].startswith(f"results/logs/{rule}/")
    assert directives["benchmark"].startswith(f"results/benchmarks/{rule}/")
    assert Path(directives["script"]).name == f"{rule}.py", "a rule and its script share a name"


@pytest.mark.parametrize("rule", sorted(SCRIPTED))
def test_environment_has_every_package_the_rule_imports(rule):
    directives = SCRIPTED[rule]
    env_file = (RULES / directives["conda"]).resolve()
    script = (RULES / directives["script"]).resolve()
    packages = env_packages(env_file)
    needed = imports_of(script, set())
    missing = needed - set(packages)
    assert not missing, f"{env_file.name} lacks {sorted(missing)} used by {script.name}"


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_environment_pins_agree_with_requirements(env_file):
    required = pins()
    for name, version in env_packages(env_file).items():
        assert version, f"{env_file.name}: {name} is not pinned"
        if name in ("python", "pip"):
            continue
        assert name in required, f"{env_file.name}: {name} is not in requirements.txt"
        assert version == required[name], f"{env_file.name}: {name} {version} != {required[name]}"


def test_python_of_environments_matches_the_project():
    for env_file in (ROOT / "envs").glob("*.yaml"):
        assert (
            env_packages(env_file)["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
        )
