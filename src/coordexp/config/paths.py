"""Path resolution that never depends on the working directory (openspec/specs/training-config, Paths Independent Of
The Working Directory).

- absolute paths are kept;
- a path starting with ``.`` (``./x``, ``../x``) is relative to the config file that set it;
- anything else is relative to the repo root (the parent of the nearest ``configs/`` ancestor of
  the config file); when it does not exist there but does next to the config file, the config's
  directory is used.
"""

from __future__ import annotations

from pathlib import Path


def repo_root_for(config_file: Path) -> Path:
    config_file = Path(config_file).resolve()
    for parent in config_file.parents:
        if parent.name == "configs":
            return parent.parent
    return config_file.parent


def resolve_path(value: str, config_file: Path, *, must_exist_for_fallback: bool = True) -> Path:
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    config_dir = Path(config_file).resolve().parent
    if value.startswith("."):
        return (config_dir / p).resolve()
    from_root = (repo_root_for(config_file) / p).resolve()
    if must_exist_for_fallback and not from_root.exists() and (config_dir / p).exists():
        return (config_dir / p).resolve()
    return from_root
