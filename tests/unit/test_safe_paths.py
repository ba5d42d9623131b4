"""Dataset paths from callers stay inside the data roots (keelwatch.data_roots), and the
settings that list the roots parse from the environment."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from keelwatch.data_roots import (
    READ_ROOTS_SETTING,
    WRITE_ROOTS_SETTING,
    DataPathError,
    require_inside,
    resolve_read,
    resolve_write,
)
from keelwatch.errors import InvalidInputError
from keelwatch.settings import Settings

OUTSIDE = f"input_uri: the path is outside the configured data roots ({READ_ROOTS_SETTING})"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "datasets").mkdir(parents=True)
    (folder / "datasets" / "scores.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("ssn,salary\n123,456\n")
    return secret


def refusal(location: str, roots: list[Path], field: str = "input_uri") -> str:
    with pytest.raises(DataPathError) as caught:
        resolve_read(location, roots, field=field)
    assert isinstance(caught.value, InvalidInputError)  # 422 on the API
    return str(caught.value)


def test_a_file_inside_a_root_is_read_at_its_real_path(root: Path) -> None:
    expected = root / "datasets" / "scores.csv"
    assert resolve_read(str(expected), [root], field="input_uri") == expected
    assert resolve_read(expected.as_uri(), [root], field="input_uri") == expected
    assert resolve_read("file://localhost" + str(expected), [root], field="x") == expected
    # Relative: to the first root, never the server's working directory.
    assert resolve_read("datasets/scores.csv", [root], field="input_uri") == expected
    # A second root counts as much as the first.
    assert resolve_read(str(expected), [root / "nope", root], field="input_uri") == expected


def test_outside_the_roots_reads_the_same_whether_the_file_exists_or_not(
    root: Path, outside: Path
) -> None:
    messages = {
        refusal(location, [root])
        for location in (
            "/etc/passwd",
            "/etc/does-not-exist",
            "file:///etc/passwd",
            "file:///etc/does-not-exist",
            str(outside),
            str(outside.with_name("absent.csv")),
        )
    }
    assert messages == {OUTSIDE}
    assert "ssn" not in OUTSIDE and "passwd" not in OUTSIDE


def test_a_sibling_folder_sharing_the_roots_prefix_is_outside(tmp_path: Path, root: Path) -> None:
    twin = tmp_path / "root-evil" / "x.csv"
    twin.parent.mkdir()
    twin.write_text("a\n1\n")
    assert refusal(str(twin), [root]) == OUTSIDE


def test_symlinks_are_followed_before_the_check(root: Path, outside: Path) -> None:
    (root / "datasets" / "link.csv").symlink_to(outside)
    (root / "datasets" / "dangling.csv").symlink_to(outside.with_name("absent.csv"))
    (root / "escape").symlink_to(outside.parent, target_is_directory=True)
    assert refusal(str(root / "datasets" / "link.csv"), [root]) == OUTSIDE
    assert refusal(str(root / "datasets" / "dangling.csv"), [root]) == OUTSIDE
    assert refusal(str(root / "escape" / "secret.csv"), [root]) == OUTSIDE
    # A link that stays inside is fine, and the real path is what comes back.
    (root / "inner.csv").symlink_to(root / "datasets" / "scores.csv")
    assert resolve_read(str(root / "inner.csv"), [root], field="f") == (
        root / "datasets" / "scores.csv"
    )


def test_a_root_given_through_a_symlink_still_contains_its_files(
    tmp_path: Path, root: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    real = root / "datasets" / "scores.csv"
    assert resolve_read(str(alias / "datasets" / "scores.csv"), [alias], field="f") == real
    assert resolve_read(str(real), [alias], field="f") == real


def test_dot_dot_segments_are_refused_even_when_they_land_inside(root: Path) -> None:
    inside = str(root / "datasets" / ".." / "datasets" / "scores.csv")
    for location in (inside, "../etc/passwd", "datasets/../../x.csv", "file:///a/%2e%2e/b.csv"):
        message = refusal(location, [root])
        assert message.startswith("input_uri: '..' segments are not allowed"), message
        assert READ_ROOTS_SETTING in message


def test_nul_characters_and_other_schemes_are_refused_before_any_lookup(root: Path) -> None:
    assert refusal(str(root / "a\x00b.csv"), [root]) == "input_uri: the path contains a NUL byte"
    assert refusal("file:///a%00b.csv", [root]) == "input_uri: the path contains a NUL byte"
    assert "unsupported location scheme 's3'" in refusal("s3://bucket/x.parquet", [root])
    assert "unsupported location scheme 'http'" in refusal("http://host/x.csv", [root])
    assert refusal("file://otherhost/x.csv", [root]) == (
        "input_uri: file URIs with a host are not supported"
    )
    assert refusal("", [root]) == "input_uri: the path is empty"
    assert "no data roots are configured" in refusal("/x.csv", [])


def test_inside_the_roots_only_regular_files_are_datasets(root: Path) -> None:
    fifo = root / "pipe.csv"
    os.mkfifo(fifo)
    sock_path = root / "s.csv"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        for path in (fifo, sock_path, root / "datasets"):
            message = refusal(str(path), [root], field="window.uri")
            assert message == (
                f"window.uri: {path} is not a regular file (a folder, device, FIFO or socket)"
            )
    # A device file: /dev as the root (no device can be created without privileges).
    assert "is not a regular file" in refusal("/dev/null", [Path("/dev")])
    # Inside the roots, naming what is missing is fine: the caller may look there anyway.
    missing = root / "datasets" / "absent.csv"
    assert refusal(str(missing), [root]) == f"input_uri: file not found: {missing}"


def test_output_folders_must_be_inside_the_write_roots(tmp_path: Path, root: Path) -> None:
    outputs = root / "outputs"
    assert resolve_write(str(outputs / "job-1"), [outputs], field="output_uri") == (
        outputs / "job-1"
    )
    outputs.mkdir()
    assert resolve_write(outputs.as_uri(), [outputs], field="output_uri") == outputs
    for location in ("/etc", "/tmp", str(root / "datasets"), str(tmp_path)):
        with pytest.raises(DataPathError) as caught:
            resolve_write(location, [outputs], field="output_uri")
        assert str(caught.value) == (
            f"output_uri: the path is outside the configured data roots ({WRITE_ROOTS_SETTING})"
        )
    (outputs / "file").write_text("x")
    with pytest.raises(DataPathError, match="exists and is not a folder"):
        resolve_write(str(outputs / "file"), [outputs], field="output_uri")
    with pytest.raises(DataPathError, match=r"'\.\.' segments"):
        resolve_write(str(outputs / ".." / "outputs"), [outputs], field="output_uri")


def test_require_inside_guards_paths_keelwatch_computed(tmp_path: Path, root: Path) -> None:
    outputs = root / "outputs"
    assert require_inside(outputs / "job", [outputs], what="job j's output folder") == (
        outputs / "job"
    )
    (outputs).mkdir()
    (outputs / "link").symlink_to(tmp_path, target_is_directory=True)
    for path in ("/etc", outputs / "link" / "job"):
        with pytest.raises(DataPathError) as caught:
            require_inside(path, [outputs], what="job j's output folder")
        assert str(caught.value) == (
            f"job j's output folder is outside the configured write roots "
            f"({WRITE_ROOTS_SETTING}); refusing to write there"
        )


# --------------------------------------------------------------------------- settings


def test_default_roots_are_the_data_dir_and_the_output_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "kw")
    data_dir = tmp_path / "kw"
    assert settings.data_roots.read == [str(data_dir), str(data_dir / "outputs")]
    assert settings.data_roots.write == [str(data_dir / "outputs")]
    moved = Settings(data_dir=tmp_path / "kw", inference={"output_dir": "/shared/out"})
    assert moved.data_roots.read == [str(data_dir), "/shared/out"]
    assert moved.data_roots.write == ["/shared/out"]
    # The demo's inputs (data_dir/demo-*.parquet) and outputs (output_dir/<job>) are inside.
    demo_input = data_dir / "demo-scoring.parquet"
    demo_input.parent.mkdir()
    demo_input.write_bytes(b"PAR1")
    assert resolve_read(str(demo_input), settings.data_roots.read, field="input_uri") == (
        demo_input
    )
    assert require_inside(data_dir / "outputs" / "job", settings.data_roots.write, what="x")


def test_roots_and_origins_parse_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEELWATCH_DATA_ROOTS__READ", "/data/in:/data/shared")
    monkeypatch.setenv("KEELWATCH_DATA_ROOTS__WRITE", '["/data/out"]')
    monkeypatch.setenv("KEELWATCH_API__CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("KEELWATCH_API__MAX_BODY_BYTES", "2048")
    settings = Settings(data_dir=tmp_path)
    assert settings.data_roots.read == ["/data/in", "/data/shared"]
    assert settings.data_roots.write == ["/data/out"]
    assert settings.api.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.api.max_body_bytes == 2048
    monkeypatch.delenv("KEELWATCH_API__CORS_ORIGINS")
    assert Settings(data_dir=tmp_path).api.cors_origins == []  # CORS off by default
