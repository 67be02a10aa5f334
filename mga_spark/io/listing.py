"""Input listing on the driver: the files that paths, directories and globs name."""

from __future__ import annotations

from fsspec.core import url_to_fs

GLOB_CHARS = "*?["


class InputError(Exception):
    """An input problem, phrased for the user: names the file (or path) and what is wrong."""


def _hidden(relative: str) -> bool:
    """Spark's rule: names starting with '_' or '.' (and anything under such dirs) are not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _expand(path: str, storage_options: dict) -> list[str]:
    fs, root = url_to_fs(path, **storage_options)
    if any(c in root for c in GLOB_CHARS):
        base = root[: min(root.index(c) for c in GLOB_CHARS if c in root)].rsplit("/", 1)[0]
        found = fs.glob(root, detail=True)
        files = [p for p, info in found.items()
                 if info.get("type") == "file" and not _hidden(p[len(base):])]
    elif fs.isdir(root):
        prefix = root.rstrip("/") + "/"
        files = [p for p in fs.find(root) if not _hidden(p[len(prefix):])]
    elif fs.isfile(root):
        files = [root]  # named explicitly: taken even if its name looks hidden
    else:
        raise InputError(f"input path {path!r} does not exist")
    if not files:
        raise InputError(f"input path {path!r} matches no files (hidden '_'/'.' files are skipped)")
    return [fs.unstrip_protocol(p) for p in files]


def list_input_files(paths: list[str], storage_options: dict | None = None) -> list[str]:
    """Files named by `paths` (files, directories searched recursively, or globs), as sorted,
    de-duplicated full URIs. Hidden files such as `_SUCCESS` and `.x.crc` are skipped."""
    if not paths:
        raise InputError("no input paths: set input.paths or pass --input")
    files: set[str] = set()
    for path in paths:
        files.update(_expand(path, storage_options or {}))
    return sorted(files)
