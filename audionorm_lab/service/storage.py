"""Paths a service worker may touch: only under its storage root, symbolic links followed.

A job's message names its input and output paths. With a storage root set
(``AUDIONORM_STORAGE_ROOT``), both are resolved (every symbolic link followed, ``..``
collapsed) and refused when they lie outside the root: a message cannot make the
worker read ``/etc/passwd``, or another tenant's tree through a link. The output is
written to a temporary file in its folder and renamed over the output path, which
replaces a symbolic link there rather than writing through it; a link at the output
path that points out of the root is refused all the same, and so is an output that is
the input.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputPathError, PathOutsideRootError


def resolve_inside(path: str | os.PathLike, root: str | os.PathLike, what: str) -> Path:
    """``path`` with every link followed, when it lies inside ``root`` (also resolved); else
    :class:`~audionorm_lab.errors.PathOutsideRootError` naming ``what`` it is ("input", "output")."""
    resolved, inside = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if resolved != inside and inside not in resolved.parents:
        raise PathOutsideRootError(f"{path}: the {what} resolves to {resolved}, outside the storage root {inside}")
    return resolved


def confine(input_file: str | os.PathLike, output_file: str | os.PathLike, root: str | os.PathLike
            ) -> tuple[Path, Path]:
    """The job's input and output paths, resolved and checked against ``root``: (input, output).

    The output's folder is resolved and checked; so is the output path itself when it is a link.

    Raises
    ------
    PathOutsideRootError, OutputPathError
    """
    src = resolve_inside(input_file, root, "input")
    output = Path(output_file)
    dst = resolve_inside(output.parent, root, "output's folder") / output.name
    if dst.is_symlink():
        resolve_inside(dst, root, "output (a symbolic link)")
    if dst.exists() and os.path.samefile(dst, src):
        raise OutputPathError(f"{output_file}: the output would replace the input")
    return src, dst
