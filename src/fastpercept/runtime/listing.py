"""Finding a batch's inputs (files and folder trees) and planning where each result goes.

Inputs are found by suffix (:data:`MEDIA_SUFFIXES`: every kind of file the package reads; a
new kind, e.g. video, adds its suffixes there); outputs never overwrite an input, and two inputs
never share an output.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import NAME_MAX
from ..errors import UserError
from .images import IMAGE_SUFFIXES, IMAGE_WRITE_FORMATS
from .video import VIDEO_SUFFIXES, is_video

# Every suffix a batch picks up in a folder (any case): images, and videos (stylized frame by frame).
MEDIA_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES

def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _media_names(files: list[str]) -> list[str]:
    return [name for name in files if not _is_hidden(name) and os.path.splitext(name)[1].lower() in MEDIA_SUFFIXES]


def _walk_images(folder: Path, recursive: bool, skip: Path | None = None,
                 skipped: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """``(file, real file)`` for the files under folder with a MEDIA_SUFFIXES suffix (any case),
    sorted by their path below folder; hidden files and folders skipped.

    Symbolically linked folders are followed, each real folder once (a link cycle ends there).
    skip: a folder (resolved) whose contents are left out, e.g. an output folder inside folder;
    the files left out there are appended to ``skipped``.
    The real file is the resolved folder joined with the name: one ``resolve`` per folder, not
    per file (100,000 files list in about a second).
    """
    found: list[tuple[tuple[str, ...], Path, Path]] = []
    visited: set[Path] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        root_path = Path(root)
        real = root_path.resolve()
        # The output folder is skipped only when nested: -o equal to the input folder must
        # still be seen (and refused) as overwriting the inputs.
        if skip is not None and root_path != folder and real == skip:
            dirs[:] = []
            if skipped is not None:
                skipped.extend(Path(r) / name for r, _, names in os.walk(root_path) for name in _media_names(names))
            continue
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        # Pruning dirs in place stops os.walk descending into hidden folders.
        dirs[:] = [d for d in dirs if not _is_hidden(d)] if recursive else []
        rel = root_path.relative_to(folder).parts
        found.extend(((*rel, name), root_path / name, real / name) for name in _media_names(files))
    # Sort by path components so "a/b.png" and "a-b.png" order the same on every platform.
    found.sort(key=lambda entry: entry[0])
    return [(path, real) for _, path, real in found]


def _link_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file although it is listed (a symbolic link to itself, in
    a loop or to a missing file), or None."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{path}: a symbolic link that leads back to itself (a loop); nothing to read"
        if os.path.islink(path):
            return f"{path}: a symbolic link to a missing file ({os.readlink(path)})"
        return f"{path}: {e.strerror or e}"
    return None


def _expand(inputs: Sequence[str | Path], recursive: bool, skip: Path | None = None,
            failed: list[tuple[Path, str]] | None = None, skipped: list[Path] | None = None
            ) -> list[tuple[Path, Path, bool]]:
    """(image, path relative to its input folder or its bare name, came-from-a-folder) per image.

    The same file reached twice (given twice, or as a file and inside a folder) is kept once. A
    missing input or a folder without images raises UserError, or, with ``failed`` given, is
    appended there as ``(input, message)`` and the other inputs go on; so is, with ``failed``, a
    file in a folder that is a broken symbolic link. Files in the ``skip`` folder go to ``skipped``.
    """
    seen: set[Path] = set()
    result: list[tuple[Path, Path, bool]] = []
    for item in inputs:
        p = Path(item)
        try:
            if p.is_dir():
                images = _walk_images(p, recursive, skip, skipped)
                if not images:
                    raise UserError(f"{p}: no images found ({', '.join(MEDIA_SUFFIXES)})")
                if failed is not None:  # planning a batch: a link that leads nowhere is reported, not planned
                    problems = [_link_problem(img) for img, _ in images]
                    failed.extend((img, problem) for (img, _), problem in zip(images, problems) if problem)
                    images = [entry for entry, problem in zip(images, problems) if not problem]
                entries = [(img, img.relative_to(p), True, real) for img, real in images]
            elif p.exists():
                entries = [(p, Path(p.name), False, p.resolve())]
            elif p.is_symlink():
                raise UserError(_link_problem(p) or f"{p}: cannot be read")
            else:
                raise UserError(f"{p}: no such file or folder")
        except UserError as e:
            if failed is None:
                raise
            failed.append((p, str(e)))
            continue
        for img, rel, from_dir, key in entries:
            if key not in seen:
                seen.add(key)
                result.append((img, rel, from_dir))
    return result


def list_images(inputs: Sequence[str | Path], recursive: bool = True) -> list[Path]:
    """The image files named by inputs, in order: files as given (whatever their suffix),
    folders expanded to their images (MEDIA_SUFFIXES, any case; hidden files and folders
    skipped; sorted). Raises UserError for a missing input or a folder with no images.
    """
    return [img for img, _, _ in _expand(inputs, recursive)]


# ------------------------------------------------------------------------------ output plans


def _output_ext(image: Path, default_ext: str | None) -> str:
    """The input's own suffix when we can write it (a video keeps its container), else
    default_ext (".png" if not given)."""
    if image.suffix.lower() in IMAGE_WRITE_FORMATS or is_video(image):
        return image.suffix
    ext = default_ext or ".png"
    return ext if ext.startswith(".") else "." + ext


def _is_same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # catches hard links and case-insensitive file systems
    except OSError:
        return False


def refuse_overwriting_inputs(target: str | Path, inputs: Sequence[str | Path]) -> None:
    """Raise UserError if writing ``target`` would replace one of ``inputs`` (same path, a link or a
    hard link to it, or the same file on a case-insensitive file system)."""
    target = Path(target)
    for src in map(Path, inputs):
        if target.resolve() == src.resolve() or (target.exists() and _is_same_file(src, target)):
            raise UserError(f"{target}: output would overwrite the input {src}; choose another output")


def check_image_output(out: str | Path, video: bool = False) -> Path:
    """``out`` as the path of one output image (or, with ``video``, one video): UserError unless it
    has a suffix we write (``.jpg .png .webp .bmp .tif``; videos ``.mp4 .mov .mkv .webm .avi``;
    any case) and is not a folder."""
    path = Path(out)
    if str(out) == "-":
        raise UserError("-o -: results are files; writing them to standard output is not supported")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    kinds = VIDEO_SUFFIXES if video else tuple(IMAGE_WRITE_FORMATS)
    if path.suffix.lower() not in kinds:
        what = "videos" if video else "images"
        raise UserError(f"{path}: cannot write '{path.suffix or '(no suffix)'}' {what}; use one of {', '.join(kinds)}")
    return path


def output_names_file(out: str | Path, inputs: Sequence[str | Path]) -> bool:
    """Whether ``-o out`` names one output file (else a folder), or UserError when it is neither.

    A file: ``out`` has a suffix and is not an existing folder (it must be one we write). A
    folder: an existing folder, a name ending in ``/``, or a name without a suffix when the
    inputs are several or include a folder. ``-`` (standard output) is not supported.
    """
    text = str(out)
    path = Path(text)
    if text != "-" and (path.is_dir() or text.endswith(("/", os.sep))):
        return False
    if path.suffix or text == "-":
        check_image_output(out, video=len(inputs) == 1 and is_video(inputs[0]))
        return True
    if len(inputs) == 1 and Path(inputs[0]).is_file():
        raise UserError(f"{path}: no image suffix; name a file such as {path}.png, or a folder as {path}/")
    return False


def plan_outputs(
    inputs: Sequence[str | Path],
    out: str | Path | None,
    suffix: str,
    default_ext: str | None = None,
    recursive: bool = True,
    failed: list[tuple[Path, str]] | None = None,
    overwrite: bool = False,
) -> list[tuple[Path, Path]]:
    """Pair every input image with the path its result is written to.

    - out None: beside the input, named "{stem}-{suffix}{ext}". When walking folders, a file
      that is another input's output (``a-{suffix}.jpg`` beside ``a.jpg``) is taken to be an
      earlier result and left out, so running the same command twice does not process its own
      outputs; any other file, ``photo-{suffix}.jpg`` alone included, is an input.
    - out naming a file (:func:`output_names_file`; one input file): out itself, replaced if it
      exists (the user named it).
    - otherwise out is a folder: an input file goes to out/NAME, images found in an input
      folder keep their path relative to it (out/sub/NAME). An output folder inside an input
      folder is not walked; the images there that are not this run's outputs are reported.
    ext is the input's suffix when it is one we write, otherwise default_ext (default ".png").

    A file that already exists where an output would go (beside the inputs or in the output
    folder) is never replaced unless ``overwrite``: it may be the user's own file that happens
    to carry our naming. With ``failed`` given, such an input, and a missing input, is appended
    there as ``(input, message)`` and left out of the plan (the batch goes on); without it,
    UserError is raised. So is an input whose output's name would be longer than a file system
    takes (NAME_MAX bytes), and a listed file that is a symbolic link leading nowhere.

    Raises UserError if an output would overwrite an input or two inputs would share an output.
    """
    out_path = Path(out) if out is not None else None
    names_file = out is not None and output_names_file(out, inputs)
    if out_path is not None and not names_file and out_path.exists() and not out_path.is_dir():
        raise UserError(f"{out_path}: exists and is not a folder")
    skip = out_path.resolve() if out_path is not None and not names_file else None

    skipped: list[Path] = []
    entries = _expand(inputs, recursive, skip, failed, skipped)
    if out_path is None:
        # A file in a folder that is another input's output (a-mosaic.jpg beside a.jpg) is an
        # earlier result, not an input; the user's own photo-mosaic.jpg without a photo.jpg is one.
        outputs = {_beside(img, suffix, default_ext) for img, _, _ in entries}
        entries = [e for e in entries if not (e[2] and e[0] in outputs)]

    if names_file:
        if len(inputs) != 1 or len(entries) != 1 or entries[0][2]:
            raise UserError(f"{out_path}: names one file but the input holds {len(entries)} image(s); give a folder")
        pairs = [(entries[0][0], out_path)]
    elif out_path is None:
        pairs = [(img, _beside(img, suffix, default_ext)) for img, _, _ in entries]
    else:
        pairs = [
            (img, out_path / rel.with_suffix(_output_ext(img, default_ext)))
            for img, rel, _ in entries
        ]
    # Images inside an output folder nested in an input folder are not read (they would be
    # processed again on every run); those that are not this run's outputs are the user's, said so.
    targets = {target.resolve() for _, target in pairs if len(os.fsencode(target.name)) <= NAME_MAX}
    for image in skipped:
        if _resolved(image) not in targets:
            _refuse(failed, image, f"{image}: inside the output folder {out_path}, so not read as an input; "
                                   "choose an output folder outside the input folder")
    kept = []
    for img, target in pairs:
        size = len(os.fsencode(target.name))
        if size > NAME_MAX:
            _refuse(failed, img, f"{img}: its output's name would be {size} bytes, over the {NAME_MAX} a file "
                                 "name may have; rename the input or name the output")
        else:
            kept.append((img, target))
    _check_plan(kept)
    if names_file or overwrite:
        return kept
    pairs, kept = kept, []
    for img, target in pairs:
        if target.exists():
            _refuse(failed, img, f"{target}: exists (not written by this run); pass --overwrite to replace it")
        else:
            kept.append((img, target))
    return kept


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13)
        return path


def _beside(image: Path, suffix: str, default_ext: str | None) -> Path:
    """Where an input's output goes when no output is named: ``{stem}-{suffix}{ext}`` beside it."""
    return image.with_name(f"{image.stem}-{suffix}{_output_ext(image, default_ext)}")


def _refuse(failed: list[tuple[Path, str]] | None, image: Path, message: str) -> None:
    """Record ``image`` as left out of the plan (the batch goes on), or raise where nothing is recorded."""
    if failed is None:
        raise UserError(message)
    failed.append((image, message))


def _check_plan(pairs: list[tuple[Path, Path]]) -> None:
    """Refuse plans that overwrite an input or write one output twice."""
    inputs = [img for img, _ in pairs]
    input_keys = {img.resolve(): img for img in inputs}
    writers: dict[Path, Path] = {}
    for img, target in pairs:
        key = target.resolve()
        victim = input_keys.get(key)
        if victim is None and target.exists():
            victim = next((i for i in inputs if _is_same_file(i, target)), None)
        if victim is not None:
            raise UserError(f"{target}: output would overwrite the input {victim}; choose another -o")
        if key in writers:
            raise UserError(
                f"{target}: both {writers[key]} and {img} would be written there; "
                f"rename one or process them separately"
            )
        writers[key] = img
