"""The build backend (build_backend/keras_nengo_build.py), without building.

Installs with it are proven by .ci/run (a fresh virtualenv on the default
Python and on Python 3.13); these tests pin down its metadata rewriting.
"""

import base64
import hashlib
import importlib.util
import pathlib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).parent.parent
SPEC = importlib.util.spec_from_file_location(
    "keras_nengo_build", ROOT / "build_backend" / "keras_nengo_build.py"
)
backend = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(backend)

METADATA = (
    "Metadata-Version: 2.1\nName: keras-nengo\nVersion: 0.1.0\n"
    "Requires-Dist: nengo<4.2,>=4.1\nRequires-Dist: nengo-dl==3.6.0\n"
    "Requires-Dist: numpy<2.5,>=2.0\n\nREADME\n"
)


@pytest.fixture
def source_tree(tmp_path, monkeypatch):
    """A source tree with setup.cfg's pin and an already built NengoDL wheel."""
    (tmp_path / "setup.cfg").write_text(
        "[options]\ninstall_requires =\n    nengo>=4.1,<4.2\n"
        "    # a comment\n    nengo-dl==3.6.0\n    numpy>=2.0,<2.5\n"
    )
    wheels = tmp_path / "build" / "nengo-dl"
    wheels.mkdir(parents=True)
    wheel = wheels / "nengo_dl-3.6.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return wheel


def test_pin_of_this_project(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert backend._nengo_dl_pin() == "nengo-dl==3.6.0"


def test_pin_read_from_the_source_tree(source_tree):
    assert backend._nengo_dl_pin() == "nengo-dl==3.6.0"


def test_missing_pin_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "setup.cfg").write_text("[options]\ninstall_requires =\n    nengo\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match=r"exactly one exact NengoDL pin.*none"):
        backend._nengo_dl_pin()


def test_requirement_points_to_the_local_wheel(source_tree):
    rewritten = backend._point_to_wheel(METADATA)
    line = f"Requires-Dist: nengo-dl @ {source_tree.resolve().as_uri()}\n"
    assert line in rewritten
    assert rewritten == METADATA.replace("Requires-Dist: nengo-dl==3.6.0\n", line)
    # metadata this backend prepared before is left as it is
    assert backend._point_to_wheel(rewritten) == rewritten


def test_metadata_without_the_pin_is_an_error(source_tree):
    with pytest.raises(RuntimeError, match=r"expected the line 'Requires-Dist: nen"):
        backend._point_to_wheel(METADATA.replace("nengo-dl==3.6.0", "nengo-dl"))


def test_wheel_metadata_and_record_rewritten(source_tree, tmp_path):
    wheel = tmp_path / "keras_nengo-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("keras_nengo/__init__.py", "")
        archive.writestr("keras_nengo-0.1.0.dist-info/METADATA", METADATA)
        archive.writestr(
            "keras_nengo-0.1.0.dist-info/RECORD",
            "keras_nengo/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMp"
            "JWZG3hSuFU,0\n"
            "keras_nengo-0.1.0.dist-info/METADATA,sha256=old,1\n"
            "keras_nengo-0.1.0.dist-info/RECORD,,\n",
        )
    assert backend._rewrite_wheel(str(tmp_path), wheel.name) == wheel.name
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("keras_nengo-0.1.0.dist-info/METADATA")
        record = archive.read("keras_nengo-0.1.0.dist-info/RECORD").decode()
        assert archive.read("keras_nengo/__init__.py") == b""
    assert b"Requires-Dist: nengo-dl @ file:" in metadata
    digest = base64.urlsafe_b64encode(hashlib.sha256(metadata).digest()).rstrip(b"=")
    assert (
        f"keras_nengo-0.1.0.dist-info/METADATA,sha256={digest.decode()},{len(metadata)}"
        in record.splitlines()
    )
    assert "keras_nengo-0.1.0.dist-info/RECORD,," in record.splitlines()
