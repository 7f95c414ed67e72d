"""Checkpoints that survive kills, full disks and damage, and the rule for starting a run in a folder.

A checkpoint ``checkpoints/step_XXXXXX`` holds accelerate's state (model, optimiser, schedule, RNG) and
``trainer_state.json`` (step, best score, config hash); everything else is derived from the step. It is written
under a temporary name; every file is fsynced; then ``manifest.json`` lists every file with its size and
SHA-256 and the step; then the folder is renamed into place. A checkpoint without a manifest was never
finished. The last ``train.keep_checkpoints`` are kept.

``--resume`` verifies the newest checkpoint against its manifest (sizes, then hashes: reading it once, about a
second per GB) and falls back to the newest intact one, saying which it skipped and why; a damaged one is
renamed ``step_XXXXXX.corrupt`` (kept for inspection, deleted by the next save). With none intact the run stops
with one line naming the folder.

A run refuses an output folder that already holds something unless ``--resume`` (continue the run there) or
``--overwrite`` (delete the old run first) is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError
from ..errors import RunError, warn
from .runtime import Runtime

MANIFEST = "manifest.json"
STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"step_(\d+)")
# What a bgpo run writes into its folder: --overwrite deletes only folders holding at least one of these.
RUN_FILES = ("config.yaml", "log.jsonl", "eval.jsonl", "checkpoints", "final", "best", "summary.json")


# ------------------------------------------------------------------------------------------- the run folder
def check_output_dir(out: Path, *, resume: bool, overwrite: bool, config_hash: str | None = None) -> None:
    """Raise unless a run may start in ``out``: it is absent or empty, or ``resume`` or ``overwrite`` is given.

    With ``resume`` and ``config_hash`` (the run's ``digest(location=False)``), the run ``out`` holds must have
    that configuration (its ``config.yaml``): resuming another configuration would overwrite its files, and
    where it has no checkpoint (``save_every: 0``, or killed before the first save) nothing else would notice.
    Read-only, so every process can call it (and the CLI before loading a model).
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue the run, or delete it and start again")
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"output_dir {out} is a file; choose another --output-dir")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if resume:
        stored = out / "config.yaml"
        if config_hash is not None and stored.is_file():
            from ..run_config import config_digest

            held = config_digest(yaml.safe_load(stored.read_text()) or {}, location=False)
            if held != config_hash:
                raise ConfigError(
                    f"{out} holds a run of a different configuration (hash {held}, now {config_hash}; its "
                    "config.yaml says which); resume with the same config, or pass --overwrite to start again"
                )
        return
    shown = ", ".join(entries[:6]) + (", …" if len(entries) > 6 else "")
    if not overwrite:
        raise RunError(
            f"output_dir {out} is not empty ({shown}); pass --resume to continue the run there or --overwrite to "
            "delete it and start again (or choose another --output-dir)"
        )
    if not set(entries) & set(RUN_FILES):
        raise RunError(
            f"--overwrite would delete {out}, which does not hold a bgpo run ({shown}); empty it yourself or choose "
            "another --output-dir"
        )


def clear_output_dir(out: Path) -> None:
    """Delete everything in ``out`` (``--overwrite``, after :func:`check_output_dir`)."""
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# ------------------------------------------------------------------------------------------ durable writes
def _fsync(path: Path) -> None:
    """Flush a file's or folder's content to the disk (a rename is only durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically: a temporary file, fsynced, renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def replace_dir(src: Path, dst: Path) -> None:
    """Make ``src`` appear at ``dst`` atomically (rename; an older ``dst`` is moved aside first)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    _fsync(dst.parent)
    shutil.rmtree(old, ignore_errors=True)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, step: int) -> None:
    """Fsync every file of ``folder``, then write ``manifest.json``: step, and each file's size and SHA-256."""
    files = {}
    for path in _files(folder):
        _fsync(path)
        files[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    write_json(folder / MANIFEST, {"step": step, "files": files})
    _fsync(folder)


def verify(folder: Path) -> str | None:
    """Why ``folder`` is not an intact checkpoint, or ``None`` if its files match its manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = {str(name): (int(info["bytes"]), str(info["sha256"])) for name, info in manifest["files"].items()}
        step = int(manifest["step"])
    except FileNotFoundError:
        return f"{MANIFEST} is missing (the checkpoint was never finished)"
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST} is damaged"
    match = _STEP_DIR.fullmatch(folder.name)
    if match is None or int(match[1]) != step:
        return f"its manifest is of step {step}"
    if STATE not in files:
        return f"its manifest does not list {STATE}"
    for name, (size, _) in files.items():  # sizes first: cheap, and what a half-written file gets wrong
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, its manifest says {size}"
    for name, (_, digest) in files.items():
        if _sha256(folder / name) != digest:
            return f"{name} does not match its SHA-256 in the manifest (the file was damaged)"
    return None


# --------------------------------------------------------------------------------------------- the model
def save_model(runtime: Runtime, model: Any, path: Path, info: dict[str, Any]) -> None:
    """Save the policy with ``bgpo_info.json`` atomically (all processes call this: gathering sharded weights
    is collective)."""
    state = runtime.accelerator.get_state_dict(model) if runtime.lockstep else None
    if runtime.is_main:
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        runtime.accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state)
        (tmp / "bgpo_info.json").write_text(json.dumps(info))
        for file in _files(tmp):
            _fsync(file)
        replace_dir(tmp, path)
    runtime.wait()


# ------------------------------------------------------------------------------------------- checkpoints
class Checkpoints:
    """The checkpoints of a run: save, find the newest intact one, load.

    Args:
        root: the ``checkpoints`` folder.
        runtime: the process group (every process saves its part; the main process writes the files).
        keep: how many recent checkpoints to keep.
        config_hash: the run's configuration hash; a checkpoint of another configuration is not resumed.

    Attributes:
        latest: the newest checkpoint this run can resume from (written or loaded by this process), if any.
    """

    def __init__(self, root: Path, runtime: Runtime, keep: int, config_hash: str) -> None:
        self.root = root
        self.runtime = runtime
        self.keep = keep
        self.config_hash = config_hash
        self.latest: Path | None = None

    def folders(self) -> list[Path]:
        """The checkpoint folders, oldest first (temporary and ``.corrupt`` ones excluded)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and _STEP_DIR.fullmatch(p.name)]
        return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``checkpoints/step_XXXXXX`` (see the module docstring); ``state`` goes to ``trainer_state.json``."""
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".tmp_step_{step:06d}"
        acc = self.runtime.accelerator
        try:
            if self.runtime.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            self.runtime.wait()
            acc.save_state(str(tmp))
            self.runtime.wait()
            if self.runtime.is_main:
                write_json(tmp / STATE, {**state, "step": step, "config_hash": self.config_hash})
                write_manifest(tmp, step)
                replace_dir(tmp, final)
                self._prune()
        except OSError as err:  # a full disk, a quota: the run cannot go on, but the older checkpoints are intact
            newest = f"the newest intact checkpoint is {self.latest}" if self.latest else "there is no other checkpoint"
            raise RunError(f"could not write checkpoint {final} ({err}); {newest}; free space, then --resume") from None
        self.runtime.wait()
        self.latest = final
        return final

    def _prune(self) -> None:
        folders = self.folders()
        for old in folders[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        newest = int(folders[-1].name.removeprefix("step_"))
        for leftover in self.root.iterdir():  # damaged checkpoints set aside on resume, unfinished writes
            corrupt = leftover.name.endswith(".corrupt") and _STEP_DIR.fullmatch(leftover.name.removesuffix(".corrupt"))
            if (corrupt and int(corrupt[1]) <= newest) or leftover.name.startswith(".tmp_step_"):
                shutil.rmtree(leftover, ignore_errors=True)

    def find_resumable(self) -> Path | None:
        """The newest intact checkpoint (decided by the main process), ``None`` if there are none at all.

        Damaged ones newer than it are reported and set aside; if every checkpoint is damaged, a
        :class:`RunError` names the folder and what is wrong with each.
        """
        # The main process verifies (reading every file once); the others take its decision.
        kind, value = self.runtime.from_main(self._choose() if self.runtime.is_main else None)
        if kind == "error":
            raise RunError(value)
        return Path(value) if kind == "found" else None

    def _choose(self) -> tuple[str, str | None]:
        """("found", path), ("none", None) or ("error", message)."""
        folders = self.folders()[::-1]
        if not folders:
            return "none", None
        skipped: list[tuple[Path, str]] = []
        for folder in folders:
            problem = verify(folder)
            if problem is None:
                for bad, why in skipped:
                    aside = bad.with_name(f"{bad.name}.corrupt")
                    shutil.rmtree(aside, ignore_errors=True)
                    os.replace(bad, aside)
                    warn(
                        f"skipped checkpoint {bad}: {why}; resuming from {folder.name} (the damaged one is now {aside})"
                    )
                return "found", str(folder)
            skipped.append((folder, problem))
        reasons = "; ".join(f"{folder.name}: {why}" for folder, why in skipped)
        return "error", (
            f"no intact checkpoint in {self.root} ({reasons}); pass --overwrite instead of --resume to start the run "
            "again"
        )

    def load(self, folder: Path) -> dict[str, Any]:
        """Load ``folder`` into the model, optimiser, schedule and RNG; returns its ``trainer_state.json``."""
        state = json.loads((folder / STATE).read_text())
        if state["config_hash"] != self.config_hash:
            raise ConfigError(
                f"{folder} was written with a different configuration (hash {state['config_hash']}, now "
                f"{self.config_hash}); resume with the same config, or pass --overwrite to start again"
            )
        self.runtime.accelerator.load_state(str(folder))
        self.latest = folder
        return state
