"""Model cards name no place of the machine that trained them (issue 22, item 16).

A card travels with the model; the training machine's folders mean nothing elsewhere and say
more about it than a user should learn. Data are recorded by name, file count and digest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from safetensors.numpy import load_file

from fastpercept.models import read_card, shipped_dir

SHIPPED = sorted(shipped_dir().glob("*.safetensors"))

# What a path of the training machine looks like anywhere in a string: an absolute path starting a
# word ("/work/x", "~/x", "C:\x"), a home or scratch folder, or a way out of the working folder.
_ABSOLUTE = re.compile(r"(?:^|[\s(\"'=:,])(?:/|~/|[A-Za-z]:\\)[^\s/]")
_LOCAL = ("/work/", "/root/", "/home/", "/tmp/", "../", "..\\")

# sha256 of each shipped model's tensors (names, dtypes, shapes and bytes, by name), as trained: a
# card rewrite must leave them alone. A retrained model updates its line here (and the golden tests).
TENSORS_SHA256 = {
    "anystyle": "1b355b56f8bc80923e33f726966d5104fd5a0a5e53be50f4a4346bd3787ecba3",
    "composition_vii": "e1b10e1b9ebcdb3b216cea1d5d3387c1d5b7f468ec3a6d8185d52281d614cf3d",
    "mosaic-half": "8e59512de9a6814d0f403e05f9693306e7e59d7c6157e2dc00da4b15f087aaf3",
    "mosaic": "ba884b8faa1b07d5902df912695a0a8de9670132bdd2f4c3bc43b9d0f2f1f87e",
    "starry_night_crop": "85935e2066284711a949af4e67ad1084e6617ec93058d81612d42c52a8c40f78",
    "the_scream": "4bec9aaff7e92beb3207f1391fd7efb1bd94b2a45a52c3edfe40a2cf77f5be48",
    "udnie": "b98519111cd2299388a99f2fda9fba96cf254587808527f1f9859edb5fa9d944",
    "wave_crop": "111941cd92dac7fefa450879719a9af6020cca7df716a8921bdc1dfd871a0bc9",
    "x4-pixel": "c0b4f097ecd1ba367a32cfa97c63c79a85e44ef04527599545e34ee1f1576da2",
    "x4": "fa929395498ed275ac7304b98efa29cba548606683821dec116f8875294628d6",
    "x4-real": "bfc584b5cd1dcbc481ea1924736ba7c2f520961d6f6819c3fa596d88b0185a6a",
    "x8": "2dd16b3753168b03082ae4f7ecab39d1dd0c66255c519aad65843c7688424bea",
}


def strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(where, text)`` for every string in a card, keys included, at any depth."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key} (key)", str(key)
            yield from strings(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from strings(item, f"{where}[{i}]")


def local_paths(card: dict[str, Any]) -> list[str]:
    return [f"{where}: {text!r}" for where, text in strings(card)
            if _ABSOLUTE.search(text) or any(part in text for part in _LOCAL)]


def tensors_sha256(path: Path) -> str:
    tensors = load_file(str(path))
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}\0{t.dtype}\0{t.shape}\n".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def test_the_path_finder_finds_what_the_cards_held():
    for text in ("/work/main/.campaign2/train (541 images)", "/root/runs/lr-exp/data (1271 images)",
                 "../shared/data/train (291 images)", "File: ../shared/data/styles/udnie.jpg, from",
                 "data at ~/photos", "read (/srv/data)", "C:\\Users\\me"):
        assert local_paths({"dataset": text}), text
    for text in ("scripts/gpu_campaign.py", "T91 + BSD200 (JPEG q90)", "lr 1e-3 / 1e-4", "mosaic-6500.safetensors"):
        assert not local_paths({"notes": text}), text


def test_every_model_is_pinned():
    assert sorted(TENSORS_SHA256) == sorted(p.stem for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_cards_hold_no_local_path(path):
    assert local_paths(read_card(path)) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_cards_name_their_data_by_name_count_and_digest(path):
    dataset = read_card(path)["dataset"]
    assert set(dataset) <= {"name", "files", "sha256", "note"} and {"name", "files", "sha256"} <= set(dataset)
    assert isinstance(dataset["name"], str) and dataset["name"] and isinstance(dataset["files"], int)
    if dataset["sha256"] is None:  # recorded before digests: the card says so
        assert "before digests" in dataset["note"]
    else:
        assert re.fullmatch(r"[0-9a-f]{64}", dataset["sha256"])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_model_tensors_are_unchanged(path):
    assert tensors_sha256(path) == TENSORS_SHA256[path.stem]


def test_training_records_its_data_by_name_and_digest(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from fastpercept.training.tasks import get_task
    from fastpercept.training.tasks.sr import SRConfig
    from fastpercept.training.train import files_digest

    photos = tmp_path / "holiday" / "photos"
    photos.mkdir(parents=True)
    Image.effect_noise((48, 40), 40).convert("RGB").save(photos / "a.png")
    monkeypatch.chdir(tmp_path / "holiday")
    out = tmp_path / "out" / "x4.safetensors"
    model = get_task("sr").train(SRConfig(data=str(photos), output=str(out), scale=4, loss="pixel", patch_size=32,
                                          iters=1, batch_size=1, device="cpu", precision="fp32",
                                          notes="a test run"))
    card = read_card(out)
    assert card["dataset"] == {"name": "photos", "files": 1, "sha256": files_digest(photos, [photos / "a.png"])}
    assert model.card["dataset"] == card["dataset"]
    assert local_paths(card) == [] and str(tmp_path) not in str(card)
