"""Resolving a preset handle to local files.

A preset is one of:
  * a local directory (Hugging Face / timm format, or our own `save_to_preset`),
  * a local weights file (`.safetensors`, `.bin`, `.pth`), for converters that take one,
  * `hf://org/name[@revision]`, fetched with `huggingface_hub` into its cache.
"""

import os
import pathlib

HF_PREFIX = "hf://"


class PresetNotFoundError(FileNotFoundError):
    """A preset handle that names nothing we can read."""


def split_hf_handle(preset):
    """`hf://org/name@rev` -> ("org/name", "rev" or None)."""
    repo = preset[len(HF_PREFIX) :].strip("/")
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    if repo.count("/") != 1:
        raise ValueError(
            f"Bad Hugging Face handle {preset!r}: expected hf://org/name[@revision]."
        )
    return repo, revision


def download_hf_snapshot(preset, allow_patterns=None):
    """Fetch `hf://org/name` with huggingface_hub; fail at once when offline."""
    repo, revision = split_hf_handle(preset)
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ImportError("`pip install huggingface_hub` to load hf:// presets.") from e
    try:
        # The cache first: a checkpoint downloaded once loads with no network.
        return snapshot_download(
            repo, revision=revision, allow_patterns=allow_patterns, local_files_only=True
        )
    except Exception:
        pass
    try:
        return snapshot_download(repo, revision=revision, allow_patterns=allow_patterns)
    except Exception as e:
        raise PresetNotFoundError(
            f"Could not fetch {preset!r} from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Without network access, download the checkpoint on a machine that has "
            f"it (e.g. `huggingface-cli download {repo} --local-dir ./{repo.split('/')[-1]}`), "
            "copy the directory here and pass its path instead of the hf:// handle."
        ) from None


def resolve_preset(preset, allow_patterns=None):
    """Return a local `pathlib.Path` (directory or file) for a preset handle."""
    preset = os.fspath(preset)
    if preset.startswith(HF_PREFIX):
        return pathlib.Path(download_hf_snapshot(preset, allow_patterns))
    path = pathlib.Path(preset).expanduser()
    if not path.exists():
        raise PresetNotFoundError(
            f"Preset {preset!r} is neither an existing file or directory nor an "
            "hf://org/name handle."
        )
    return path
