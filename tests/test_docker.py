"""docker/Dockerfile without a Docker engine: what it copies from the build context (the checkout
less .dockerignore) holds every package pyproject.toml names, and an install of exactly that
copy, alone, runs every `shaobing` command and imports every module."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def pyproject_packages() -> list[str]:
    """The top-level packages the wheel is built from (setuptools' `find` includes)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


@dataclass
class Stage:
    name: str
    base: str
    workdir: str = "/"
    # (stage copied from or None for the context, sources, destination, destination a folder?)
    copies: list[tuple[str | None, list[str], str, bool]] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (workdir, command)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> dict[str, Stage]:
    parsed: dict[str, Stage] = {}
    stage: Stage | None = None
    for word, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "FROM":
            named = re.fullmatch(r"(\S+)(?:\s+as\s+(\S+))?", rest, re.I)
            assert named, rest
            stage = Stage(named[2] or str(len(parsed)), named[1])
            parent = parsed.get(stage.base)
            if parent is not None:  # FROM an earlier stage: its files and place carry on
                stage.workdir, stage.copies = parent.workdir, list(parent.copies)
            parsed[stage.name] = stage
            continue
        assert stage is not None, f"{word} before FROM"
        if word == "WORKDIR":
            stage.workdir = posixpath.join(stage.workdir, rest)
        elif word == "COPY":
            args = rest.split()
            source_stage = None
            while args[0].startswith("--"):
                flag = args.pop(0)
                if flag.startswith("--from="):
                    source_stage = flag.removeprefix("--from=")
            *sources, dest = args
            folder = dest.endswith("/") or dest == "." or len(sources) > 1
            target = posixpath.normpath(posixpath.join(stage.workdir, dest))
            stage.copies.append((source_stage, sources, target, folder))
        elif word == "RUN":
            stage.runs.append((stage.workdir, rest))
    return parsed


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (exclude?, pattern): Go's filepath.Match with `**`, the last match
    deciding, a pattern also covering everything below what it names."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip("/"))
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            if part.startswith("**"):
                regex += "(?:.*/)?" if part.endswith("/") else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            else:
                regex += re.escape(part)
        rules.append((exclude, re.compile(regex + "(?:/.*)?")))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    verdict = False
    for exclude, pattern in rules:
        if pattern.fullmatch(path):
            verdict = exclude
    return verdict


def context_files() -> set[str]:
    """The build context: every file of the checkout .dockerignore lets through."""
    rules = ignore_rules()
    exceptions = any(not exclude for exclude, _ in rules)
    files = set()
    for folder, dirs, names in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if not exceptions:  # nothing below an ignored folder can come back
            dirs[:] = [d for d in dirs if not ignored(prefix + d, rules)]
        files |= {prefix + n for n in names if not ignored(prefix + n, rules)}
    return files


def image_files(stage: Stage, context: set[str]) -> dict[str, str]:
    """What the stage's COPY instructions put where: {path in the image: path in the context}
    (copies from other stages are left to `test_the_console_is_built_into_the_image`)."""
    placed: dict[str, str] = {}
    for source_stage, sources, dest, folder in stage.copies:
        if source_stage is not None:
            continue
        for source in sources:
            source = posixpath.normpath(source)
            if source in context:  # one file
                placed[posixpath.join(dest, posixpath.basename(source)) if folder else dest] = (
                    source
                )
                continue
            below = "" if source == "." else source + "/"
            for path in context:
                if path.startswith(below):
                    placed[posixpath.normpath(posixpath.join(dest, path[len(below) :]))] = path
    return placed


def install_dir(stage: Stage) -> str:
    """Where the stage runs `pip install .`: the source tree the image is installed from."""
    for workdir, command in stage.runs:
        if re.search(r"pip install (\S+ )*\.(\s|$)", command):
            return workdir
    raise AssertionError(f"stage {stage.name} runs no `pip install .`")


def test_every_package_of_pyproject_is_copied_into_the_image() -> None:
    packages = pyproject_packages()
    assert {"hub", "notify", "shaobing", "api"} <= set(packages)
    hub = stages()["hub"]
    files = image_files(hub, context_files())
    source = install_dir(hub)
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), f"{package} is not a package"
        assert posixpath.join(source, package, "__init__.py") in files, (
            f"docker/Dockerfile does not copy {package}/ (or .dockerignore leaves it out)"
        )
    for needed in ("pyproject.toml", "README.md", "LICENSE"):
        assert posixpath.join(source, needed) in files, needed


def test_the_context_leaves_out_local_state() -> None:
    rules = ignore_rules()
    for path in (".venv/bin/python", "var/postgres/PG_VERSION", "web/node_modules/vue/x.js",
                 "tests/timescale/node_modules/a.js", ".git/HEAD", "hub/__pycache__/db.pyc",
                 "api/console/index.html", "models/yolov8n.pt"):  # fmt: skip
        assert ignored(path, rules), path
    for path in ("pyproject.toml", "hub/db.py", "web/src/main.ts", "web/package-lock.json"):
        assert not ignored(path, rules), path


def test_the_console_is_built_into_the_image() -> None:
    """A Node stage builds web/ where vite puts it, and the image takes it from there (the
    local api/console is not in the context, so a stale build cannot slip in)."""
    all_stages = stages()
    hub = all_stages["hub"]
    from_console = [(s, src, dest) for s, src, dest, _ in hub.copies if s is not None]
    assert from_console, "the hub stage copies nothing from a console stage"
    stage_name, sources, dest = from_console[0]
    console = all_stages[stage_name]
    build_dir = next(w for w, command in console.runs if "npm run build" in command)
    vite = (ROOT / "web" / "vite.config.ts").read_text(encoding="utf-8")
    out_dir = re.search(r"outDir:\s*'([^']+)'", vite)
    assert out_dir, "vite.config.ts names its outDir"
    assert sources == [posixpath.normpath(posixpath.join(build_dir, out_dir[1]))]
    assert dest == posixpath.join(install_dir(hub), "api/console")
    web = image_files(console, context_files())
    for needed in ("package.json", "package-lock.json", "index.html", "vite.config.ts",
                   "src/main.ts"):  # fmt: skip
        assert posixpath.join(build_dir, needed) in web, needed


def test_the_vision_image_adds_its_extra_libraries_and_models() -> None:
    vision = stages()["vision"]
    assert vision.base == "hub"
    commands = " ".join(command for _, command in vision.runs)
    assert re.search(r'pip install "?\.\[vision\]"?', commands)
    for library in ("libgl1", "libglib2.0-0"):  # OpenCV's, absent from the slim image
        assert library in commands, library
    assert "VOLUME /models" in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_builds_stages_that_exist_and_feeds_the_broker_and_vision() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    known = stages()
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert build["dockerfile"] == "docker/Dockerfile", name
            assert build.get("target") in known, (name, build.get("target"))
    assert services["vision"]["build"]["target"] == "vision"
    assert any(v.endswith(":/models:ro") for v in services["vision"]["volumes"])
    # mosquitto reads the files after dropping to its own user (1883 in eclipse-mosquitto)
    command = services["broker-config"]["command"]
    assert command[command.index("--owner") + 1] == "1883:1883"
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto")


PROBE = """
import importlib, pkgutil, sys
from click.testing import CliRunner

site, packages = sys.argv[1], sys.argv[2].split(",")
from shaobing.cli import main

def commands(group, path):
    for name, command in sorted(group.commands.items()):
        yield path + [name]
        if hasattr(command, "commands"):
            yield from commands(command, path + [name])

runner = CliRunner()
for path in [[]] + list(commands(main, [])):
    result = runner.invoke(main, path + ["--help"])
    assert result.exit_code == 0, (path, result.output, result.exception)
    print("ok shaobing", " ".join(path))
for package in packages:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
outside = sorted(name for name, m in sys.modules.items()
                 if name.split(".")[0] in packages
                 and not (getattr(m, "__file__", None) or site).startswith(site))
assert not outside, outside
print("imported", len([n for n in sys.modules if n.split(".")[0] in packages]), "modules")
"""


def test_an_install_of_what_the_image_copies_runs_every_command(tmp_path: Path) -> None:
    hub = stages()["hub"]
    source = install_dir(hub)
    files = image_files(hub, context_files())
    src = tmp_path / "src"
    for image_path, context_path in files.items():
        if image_path.startswith(source + "/"):
            target = src / image_path[len(source) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / context_path, target)
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    # Only the install and the third-party libraries: `-S` keeps out site-packages' .pth
    # files, among them the editable install of the checkout this test runs from.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    packages = pyproject_packages()
    probe = subprocess.run([sys.executable, "-S", "-c", PROBE, str(site), ",".join(packages)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "ok shaobing up" in probe.stdout and "ok shaobing notify" in probe.stdout
    script = subprocess.run([sys.executable, "-S", str(site / "bin" / "shaobing"), "--help"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)  # fmt: skip
    assert script.returncode == 0 and "broker-config" in script.stdout, script.stderr


def test_the_probe_fails_without_a_package(tmp_path: Path) -> None:
    """The install test would catch a package the Dockerfile forgot (the bug it is for)."""
    site = tmp_path / "site"
    site.mkdir()
    for package in pyproject_packages():
        if package != "notify":
            shutil.copytree(ROOT / package, site / package)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SB_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]])
    probe = subprocess.run([sys.executable, "-S", "-c", PROBE, str(site),
                            ",".join(pyproject_packages())],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert probe.returncode != 0
    assert "No module named 'notify'" in probe.stderr, probe.stderr[-2000:]
