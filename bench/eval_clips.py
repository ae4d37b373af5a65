"""Fill the local cache of evaluation clips from the sources a manifest records.

    python -m bench.eval_clips [--manifest bench/eval_clips.toml] [--cache var/eval-clips]
                               [--mirror DIR]

Each clip is taken from `DIR/<owner>+<name>/repo` (a git mirror, read with `git show
<commit>:<path>`) when `--mirror` is given and holds it, else downloaded from
raw.githubusercontent.com at the recorded commit; either way its sha256 must be the recorded
one, or it is not kept. Clips already in the cache with the right sha256 are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from pydantic import BaseModel, ConfigDict

MANIFEST = Path(__file__).with_name("eval_clips.toml")
CACHE = Path(__file__).resolve().parent.parent / "var" / "eval-clips"


class Source(BaseModel):
    """Where a clip comes from, as anyone can fetch the same file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str  # owner/name on GitHub
    commit: str
    path: str
    sha256: str
    licence: str


def sources(manifest: Path) -> dict[str, Source]:
    """File name in the cache → its source, for every clip that records one."""
    raw = tomllib.loads(manifest.read_text(encoding="utf-8"))
    return {
        clip["file"]: Source.model_validate(clip["source"])
        for clip in raw["clips"].values()
        if "source" in clip
    }


def _from_mirror(mirror: Path, source: Source) -> bytes | None:
    repo = mirror / source.repo.replace("/", "+") / "repo"
    if not repo.exists():
        return None
    git = shutil.which("git")
    if git is None:
        return None
    show = [git, "--git-dir", str(_git_dir(repo)), "show", f"{source.commit}:{source.path}"]
    done = subprocess.run(show, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").is_dir() else repo


def _from_github(source: Source) -> bytes:
    url = f"https://raw.githubusercontent.com/{source.repo}/{source.commit}/{source.path}"
    with urllib.request.urlopen(url, timeout=60) as answer:
        return bytes(answer.read())


def fill(manifest: Path, cache: Path, mirror: Path | None) -> list[str]:
    """Fetch what the cache lacks; the names that could not be had."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, source in sources(manifest).items():
        target = cache / name
        if target.exists() and _sha256(target.read_bytes()) == source.sha256:
            continue
        data = _from_mirror(mirror, source) if mirror else None
        if data is None:
            try:
                data = _from_github(source)
            except OSError as exc:
                print(f"{name}: {source.repo}@{source.commit[:8]}:{source.path}: {exc}")
                missing.append(name)
                continue
        if _sha256(data) != source.sha256:
            print(f"{name}: sha256 differs from the manifest's; not kept")
            missing.append(name)
            continue
        target.write_bytes(data)
        print(f"{name}: {len(data)} bytes from {source.repo}")
    return missing


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--mirror", type=Path, default=None, help="a folder of git mirrors")
    args = parser.parse_args()
    missing = fill(args.manifest, args.cache, args.mirror)
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
