"""keras_nengo's build backend: setuptools, with NengoDL installable on any Python.

NengoDL 3.6.0 is published as a source archive only, and that archive asks for
``setuptools<64`` to be built. Those setuptools versions import
``pkgutil.ImpImporter``, which Python 3.12 removed, so on Python >= 3.12 pip
cannot build NengoDL in its default (isolated) mode. Build constraints cannot
help: they narrow ``setuptools<64``, they cannot lift it.

NengoDL's ``setup.py`` itself builds fine with a newer setuptools (it needs
``pkg_resources``, which setuptools ships up to version 80). So this backend,
which pip runs with this project's build requirements (``pyproject.toml``):

1. builds the NengoDL wheel once, with those build requirements, into
   ``build/nengo-dl/`` of the source tree (``pip wheel --no-deps
   --no-build-isolation``, so pip's configuration and index settings apply);
2. lets setuptools do everything else, then points the ``nengo-dl``
   requirement of the metadata it wrote (``setup.cfg``'s pin) to that wheel.

The wheel is the same on every Python (pure Python, ``py3-none-any``) and is
reused by later builds; delete ``build/nengo-dl/`` to rebuild it.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (the rest of the PEP 517/660 API)
    build_sdist,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
)

WHEEL_DIRECTORY = pathlib.Path("build", "nengo-dl")


def _nengo_dl_pin() -> str:
    """The ``nengo-dl==<version>`` line of setup.cfg's ``install_requires``."""
    config = configparser.ConfigParser()
    config.read("setup.cfg", encoding="utf-8")
    lines = config.get("options", "install_requires", fallback="").splitlines()
    pins = [line.strip() for line in lines if re.match(r"\s*nengo[-_]dl\s*==", line)]
    if len(pins) != 1:
        raise RuntimeError(
            "keras_nengo's build expects exactly one exact NengoDL pin in setup.cfg "
            "[options] install_requires. Received: "
            f"{pins or 'none'}. Expected: a line like 'nengo-dl==3.6.0'."
        )
    return pins[0].replace(" ", "")


def _nengo_dl_wheel() -> pathlib.Path:
    """Path of the NengoDL wheel for setup.cfg's pin, built if not there yet."""
    pin = _nengo_dl_pin()
    version = pin.split("==")[1]
    existing = sorted(WHEEL_DIRECTORY.glob(f"nengo_dl-{version}-*.whl"))
    if existing:
        return existing[0].resolve()
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable,
            *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", scratch, pin),
        ]
        # the hook that runs this backend tells its own backend through these
        # variables; a nested pip that inherits them looks for setuptools in
        # build_backend/ and fails (pip >= 26.3 passes the path as JSON)
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("_PYPROJECT_HOOKS_", "PEP517_"))
        }
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, env=environment
        )
        built = sorted(pathlib.Path(scratch).glob(f"nengo_dl-{version}-*.whl"))
        if result.returncode != 0 or not built:
            raise RuntimeError(
                f"keras_nengo's build could not make a wheel of {pin} (NengoDL "
                "publishes a source archive only). Received: exit code "
                f"{result.returncode} from `{' '.join(command)}`, output:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}\n"
                "Expected: a nengo_dl wheel. Fix: make the package index "
                f"reachable for pip, or put a {pin.replace('==', '-')} wheel in "
                f"{WHEEL_DIRECTORY}/ of the source tree."
            )
        WHEEL_DIRECTORY.mkdir(parents=True, exist_ok=True)
        target = WHEEL_DIRECTORY / built[0].name
        shutil.copyfile(built[0], target)
    return target.resolve()


def _point_to_wheel(metadata: str) -> str:
    """METADATA text with the NengoDL requirement pointing to the local wheel."""
    pin = _nengo_dl_pin()
    line = f"Requires-Dist: {pin}\n"
    name = pin.split("==")[0]
    pointed = f"Requires-Dist: {name} @ {_nengo_dl_wheel().as_uri()}\n"
    if pointed in metadata:  # setuptools reused metadata this backend prepared
        return metadata
    if line not in metadata:
        raise RuntimeError(
            f"keras_nengo's build expected the line {line.strip()!r} in the metadata "
            "setuptools wrote, to point it to the local NengoDL wheel. Received: "
            f"requirements {re.findall(r'^Requires-Dist: (.*)$', metadata, re.M)}."
        )
    return metadata.replace(line, pointed)


def _rewrite_metadata_directory(metadata_directory: str, dist_info: str) -> str:
    path = pathlib.Path(metadata_directory, dist_info, "METADATA")
    path.write_text(_point_to_wheel(path.read_text(encoding="utf-8")), "utf-8")
    return dist_info


def _rewrite_wheel(wheel_directory: str, filename: str) -> str:
    """Rewrite METADATA (and its RECORD line) inside a built wheel."""
    path = pathlib.Path(wheel_directory, filename)
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    metadata_name = next(
        info.filename
        for info, _ in members
        if re.fullmatch(r"[^/]+\.dist-info/METADATA", info.filename)
    )
    record_name = metadata_name[: -len("METADATA")] + "RECORD"
    contents = dict((info.filename, data) for info, data in members)
    metadata = _point_to_wheel(contents[metadata_name].decode("utf-8")).encode("utf-8")
    digest = base64.urlsafe_b64encode(hashlib.sha256(metadata).digest()).rstrip(b"=")
    record = re.sub(
        rf"^{re.escape(metadata_name)},[^\n]*$",
        f"{metadata_name},sha256={digest.decode()},{len(metadata)}",
        contents[record_name].decode("utf-8"),
        flags=re.M,
    ).encode("utf-8")
    replaced = {metadata_name: metadata, record_name: record}
    rewritten = path.with_suffix(".tmp")
    with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            target.writestr(info, replaced.get(info.filename, data))
    os.replace(rewritten, path)
    return filename


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = _setuptools.prepare_metadata_for_build_wheel(
        metadata_directory, config_settings
    )
    return _rewrite_metadata_directory(metadata_directory, dist_info)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    dist_info = _setuptools.prepare_metadata_for_build_editable(
        metadata_directory, config_settings
    )
    return _rewrite_metadata_directory(metadata_directory, dist_info)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = _setuptools.build_wheel(
        wheel_directory, config_settings, metadata_directory
    )
    return _rewrite_wheel(wheel_directory, filename)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    filename = _setuptools.build_editable(
        wheel_directory, config_settings, metadata_directory
    )
    return _rewrite_wheel(wheel_directory, filename)
