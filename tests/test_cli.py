"""The ``palette`` command line, run for real on image files made here."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from palette_native.cli import build_parser, main
from PIL import Image

ANSI = re.compile(r"\x1b\[")
RED = (200, 30, 30)
BLUE = (20, 40, 210)
YELLOW = (250, 230, 20)


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    """A solid PNG, a two-color PNG, a JPEG, a corrupt file and a ZIP of images and others."""
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 30), RED).save(red)
    two = tmp_path / "two.png"
    image = Image.new("RGB", (40, 30), BLUE)
    image.paste(YELLOW, (0, 0, 10, 30))  # a quarter yellow
    image.save(two)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), YELLOW).save(photo, quality=95)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(red.read_bytes()[:30])
    album = tmp_path / "album.zip"
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("deep.png", red.read_bytes())
    with zipfile.ZipFile(album, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dir/", b"")
        archive.write(red, "dir/red.png")
        archive.write(two, "two.png")
        archive.writestr("notes.txt", "not an image")
        archive.writestr("nested.zip", inner.getvalue())
        archive.writestr("broken.png", red.read_bytes()[:40])
    return {"red": red, "two": two, "photo": photo, "corrupt": corrupt, "album": album}


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "palette_native.cli", *args],
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
        **kwargs,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- extract -----------------------------------------------------------------------------


def test_single_file_json(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", str(images["red"]), "--format", "json"]) == 0
    out = capsys.readouterr()
    (record,) = json_lines(out.out)
    assert record["file"] == str(images["red"])
    palette = record["palette"]
    assert [c["hex"] for c in palette["colors"]] == ["#c81e1e"]
    assert palette["width"] == 40 and palette["height"] == 30
    assert set(palette["swatches"]) == {
        "vibrant",
        "muted",
        "dark_vibrant",
        "dark_muted",
        "light_vibrant",
        "light_muted",
    }
    assert out.err == ""


def test_default_format_is_json_when_piped(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extract", str(images["two"]), "-k", "2"]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    colors = {c["hex"]: c["fraction"] for c in record["palette"]["colors"]}
    assert colors == {"#1428d2": pytest.approx(0.75), "#fae614": pytest.approx(0.25)}


def test_many_files_and_a_zip_as_json_lines(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "extract",
            str(images["red"]),
            str(images["album"]),
            str(images["photo"]),
            "-k",
            "2",
            "-f",
            "json",
        ]
    )
    out = capsys.readouterr()
    records = json_lines(out.out)
    album = str(images["album"])
    assert [r["file"] for r in records] == [
        str(images["red"]),
        f"{album}:dir/red.png",
        f"{album}:two.png",
        f"{album}:notes.txt",
        f"{album}:nested.zip",
        f"{album}:broken.png",
        str(images["photo"]),
    ]
    by_name = {r["file"]: r for r in records}
    assert by_name[f"{album}:notes.txt"]["skipped"] == "not_image"
    assert by_name[f"{album}:nested.zip"]["skipped"] == "nested_archive"
    assert by_name[f"{album}:broken.png"]["error"]["code"]
    assert [c["hex"] for c in by_name[f"{album}:dir/red.png"]["palette"]["colors"]] == ["#c81e1e"]
    # The corrupt entry inside the ZIP is a failure: exit 1, named on stderr.
    assert status == 1
    assert f"{album}:broken.png" in out.err
    assert f"skipped {album}:notes.txt" in out.err


def test_failures_are_named_and_others_still_run(
    images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.png"
    status = main(
        ["extract", str(images["corrupt"]), str(images["red"]), str(missing), "-f", "json"]
    )
    out = capsys.readouterr()
    assert status == 1
    records = json_lines(out.out)
    assert [("palette" in r, "error" in r) for r in records] == [
        (False, True),
        (True, False),
        (False, True),
    ]
    errors = [line for line in out.err.splitlines() if ": error: " in line]
    assert len(errors) == 2
    assert str(images["corrupt"]) in errors[0]
    assert str(missing) in errors[1]
    assert "2 inputs failed" in out.err


def test_text_format_without_a_terminal_is_plain(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extract", str(images["two"]), "-k", "2", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert not ANSI.search(out)
    lines = out.splitlines()
    assert lines[0].startswith(str(images["two"]))
    assert re.fullmatch(r"\s+#1428d2\s+75\.0%", lines[1])
    assert re.fullmatch(r"\s+#fae614\s+25\.0%", lines[2])


def read_pty(fd: int) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_terminal_gets_color_swatches_and_a_progress_bar(images: dict[str, Path]) -> None:
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["COLUMNS"] = "100"
    inputs = [str(images["red"]), str(images["two"]), str(images["photo"])]
    child = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", "extract", *inputs, "-k", "2"],
        stdout=out_slave,
        stderr=err_slave,
        env=env,
    )
    os.close(out_slave)
    os.close(err_slave)
    out = read_pty(out_master).decode()
    err = read_pty(err_master).decode()
    os.close(out_master)
    os.close(err_master)
    assert child.wait(timeout=60) == 0
    # Default format on a terminal is text with 24-bit color swatches.
    assert "\x1b[48;2;200;30;30m" in out
    assert "#c81e1e" in out and "100.0%" in out
    # The progress bar went to stderr, ended at 3/3, and was cleared.
    assert "3/3" in err and "[" in err and "#" in err
    assert err.endswith("\r\x1b[K")


def visible_lines(raw: str) -> list[str]:
    """What a terminal shows: a carriage return plus erase-line wipes the current line."""
    lines, current = [], ""
    for part in re.split(r"(\r\x1b\[K|\n)", raw.replace("\r\n", "\n")):
        if part == "\n":
            lines.append(current)
            current = ""
        elif part == "\r\x1b[K":
            current = ""
        else:
            current += part
    return lines + ([current] if current else [])


def test_progress_bar_does_not_garble_output_on_a_shared_terminal(
    images: dict[str, Path],
) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    inputs = [str(images["red"]), str(images["two"]), str(images["photo"])] * 3
    child = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", "extract", *inputs, "-k", "2"],
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    raw = read_pty(master).decode()
    os.close(master)
    assert child.wait(timeout=60) == 0
    lines = visible_lines(raw)
    headers = [line for line in lines if not line.startswith(" ")]
    swatches = [line for line in lines if line.startswith(" ")]
    sizes = {
        str(images["red"]): "40x30",
        str(images["two"]): "40x30",
        str(images["photo"]): "64x48",
    }
    assert headers == [f"{path}  ({sizes[path]})" for path in inputs]
    assert len(swatches) == 3 * (1 + 2 + 1)
    for line in swatches:
        assert re.fullmatch(r"  \x1b\[48;2;\d+;\d+;\d+m {6}\x1b\[0m #[0-9a-f]{6} +[\d.]+%", line)


def test_no_color_environment_variable(images: dict[str, Path]) -> None:
    master, slave = pty.openpty()
    env = dict(os.environ, NO_COLOR="1")
    child = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", "extract", str(images["red"])],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    out = read_pty(master).decode()
    os.close(master)
    assert child.wait(timeout=60) == 0
    assert "#c81e1e" in out and not ANSI.search(out)


def test_no_progress_bar_when_stderr_is_not_a_terminal(images: dict[str, Path]) -> None:
    result = run_cli("extract", str(images["red"]), str(images["two"]), "-f", "json")
    assert result.returncode == 0
    assert result.stderr == b""
    assert len(json_lines(result.stdout.decode())) == 2


@pytest.mark.parametrize("fmt", ["css", "gpl", "svg", "json"])
def test_text_documents_to_stdout_and_file(
    fmt: str, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extract", str(images["two"]), "-k", "2", "-f", fmt]) == 0
    printed = capsys.readouterr().out
    target = tmp_path / f"out.{fmt}"
    assert main(["extract", str(images["two"]), "-k", "2", "-f", fmt, "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    written = target.read_text(encoding="utf-8")
    assert written == printed
    if fmt == "css":
        assert "--palette-1: #1428d2;" in written and "--palette-2: #fae614;" in written
    elif fmt == "gpl":
        assert written.startswith("GIMP Palette\n")
        assert " 20  40 210\t#1428d2" in written
    elif fmt == "svg":
        rects = ET.fromstring(written).findall("{http://www.w3.org/2000/svg}rect")
        assert [r.attrib["fill"] for r in rects] == ["#1428d2", "#fae614"]
    else:
        (record,) = json_lines(written)
        assert record["palette"]["colors"][0]["hex"] == "#1428d2"


def test_ase_to_stdout_and_file(images: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("extract", str(images["two"]), "-k", "2", "-f", "ase")
    assert result.returncode == 0, result.stderr
    data = result.stdout
    assert data[:4] == b"ASEF"
    assert struct.unpack(">HHI", data[4:12]) == (1, 0, 2)
    assert "#1428d2".encode("utf-16-be") in data
    target = tmp_path / "out.ase"
    assert main(["extract", str(images["two"]), "-k", "2", "-f", "ase", "-o", str(target)]) == 0
    assert target.read_bytes() == data


def test_documents_for_several_images_need_a_directory(
    images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["extract", str(images["red"]), str(images["album"]), "-f", "svg"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "--output DIR" in capsys.readouterr().err
    out_dir = tmp_path / "swatches"
    out_dir.mkdir()
    status = main([*args, "-o", str(out_dir)])
    assert status == 1  # album.zip:broken.png fails
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["album_dir_red.svg", "album_two.svg", "red.svg"]
    for path in out_dir.iterdir():
        ET.parse(path)  # each is a valid SVG


def test_exact_option_reaches_the_library(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extract", str(images["photo"]), "--exact", "-f", "json"]) == 0
    (record,) = json_lines(capsys.readouterr().out)
    assert record["palette"]["options"]["exact"] is True
    assert record["palette"]["analyzed_pixels"] == 64 * 48


def test_corrupt_zip_is_a_named_failure(
    images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(images["album"].read_bytes()[:200])
    status = main(["extract", str(broken), str(images["red"]), "-f", "json"])
    out = capsys.readouterr()
    assert status == 1
    records = json_lines(out.out)
    assert records[0] == {
        "file": str(broken),
        "error": {
            "code": "archive_corrupt",
            "message": records[0]["error"]["message"],
            "details": records[0]["error"]["details"],
        },
    }
    assert "palette" in records[1]
    assert f"{broken}: " in out.err and "[archive_corrupt]" in out.err


@pytest.mark.parametrize("colors", ["0", "-3", "many"])
def test_bad_colors_is_a_usage_error(images: dict[str, Path], colors: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["extract", str(images["red"]), "--colors", colors])
    assert info.value.code == 2


def test_colors_out_of_library_range_is_a_usage_error(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["extract", str(images["red"]), "--colors", "100000"]) == 2
    assert "colors" in capsys.readouterr().err


def test_help_via_python_m() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in (b"extract", b"quantize", b"analyze", b"theme", b"serve", b"worker"):
        assert command in result.stdout


# --- quantize ----------------------------------------------------------------------------


@pytest.mark.parametrize("dither", [False, True], ids=["plain", "dither"])
def test_quantize_writes_an_indexed_png(
    dither: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "gradient.png"
    gradient = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
    gradient.save(source)
    target = tmp_path / "out.png"
    args = ["quantize", str(source), str(target), "--colors", "4"]
    assert main(args + (["--dither"] if dither else [])) == 0
    assert str(target) in capsys.readouterr().out
    with Image.open(target) as result:
        assert result.mode == "P"
        assert result.size == (64, 64)
        used = {index for _, index in result.getcolors()}  # type: ignore[union-attr]
        assert 2 <= len(used) <= 4


def test_quantize_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.png"
    assert main(["quantize", str(missing), str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err
    assert not (tmp_path / "out.png").exists()


# --- serve / worker ----------------------------------------------------------------------


def _service_process(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    """``palette serve|worker ...`` for real, with the loopback-only network guard."""
    from servertools import guarded_env, write_guard

    env = guarded_env(write_guard(tmp_path / "guard"), {"PALETTE_LOG_LEVEL": "info"})
    log = open(tmp_path / "service.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def _settings_logged(tmp_path: Path) -> dict[str, Any]:
    """The settings the process says are in force (its start-up log line)."""
    import ast

    for line in (tmp_path / "service.log").read_text(errors="replace").splitlines():
        if "settings in force: " in line:
            return dict(ast.literal_eval(line.split("settings in force: ", 1)[1]))
    return {}


@pytest.mark.e2e
def test_serve_runs_the_service_with_its_options(tmp_path: Path) -> None:
    import signal
    import time

    import httpx
    from servertools import free_port

    port = free_port()
    data_dir = tmp_path / "data"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    proc = _service_process([*args, "--workers", "3"], tmp_path)
    try:
        deadline = time.monotonic() + 30
        ready = None
        while ready is None and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "service.log").read_text()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None and ready.status_code == 200
        assert ready.json()["checks"]["workers"] == "ok"
        assert (data_dir / "jobs.sqlite3").is_file()
        settings = _settings_logged(tmp_path)
        assert settings["host"] == "127.0.0.1" and settings["port"] == port
        assert settings["workers"] == 3 and settings["data_dir"] == str(data_dir)
    finally:
        code = _stop(proc, signal.SIGTERM)
    assert code == 0  # SIGTERM drains, then exits cleanly


@pytest.mark.e2e
def test_worker_runs_queued_jobs_with_its_options(tmp_path: Path) -> None:
    import signal

    from starlette.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    data_dir = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data_dir), run_workers=False)) as c:
        image = tmp_path / "a.png"
        Image.new("RGB", (20, 10), RED).save(image)
        r = c.post("/v1/jobs", files={"file": ("a.png", image.read_bytes(), "image/png")})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        proc = _service_process(["worker", "--data-dir", str(data_dir), "--workers", "1"], tmp_path)
        try:
            import time

            deadline = time.monotonic() + 60
            while c.get(r.headers["location"]).json()["status"] in ("queued", "running"):
                assert proc.poll() is None, (tmp_path / "service.log").read_text()
                assert time.monotonic() < deadline, "the worker did not run the job"
                time.sleep(0.1)
        finally:
            code = _stop(proc, signal.SIGTERM)
        job = c.get(r.headers["location"]).json()
    assert job["status"] == "succeeded" and code == 0
    settings = _settings_logged(tmp_path)
    assert settings["workers"] == 1 and settings["data_dir"] == str(data_dir)


def test_service_commands_come_from_the_service_plugin() -> None:
    """The library names no service module: ``serve`` and ``worker`` are added through the
    ``palette_native.commands`` entry point, with the service's own option definitions."""
    import importlib.metadata

    from service import cli as service_cli

    [entry] = importlib.metadata.entry_points(group="palette_native.commands")
    assert entry.load() is service_cli.add_commands
    parser = build_parser()
    args = parser.parse_args(["worker", "--data-dir", "/tmp/x", "--workers", "2"])
    assert args.handler is service_cli.worker and args.workers == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--workers", "-1"])  # the service's check of the flag
    assert parser.parse_args(["serve", "--workers", "0"]).workers == 0  # an API node
    args = parser.parse_args(["worker", "--threads", "3"])
    assert args.handler is service_cli.worker and args.threads == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["worker", "--threads", "0"])


def test_service_commands_without_the_service(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service that cannot be imported takes only its own commands away."""
    monkeypatch.setitem(sys.modules, "service.cli", None)
    with pytest.raises(SystemExit) as info:
        main(["serve"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "service.cli:add_commands unavailable" in err and "invalid choice: 'serve'" in err


# --- keys / audit -------------------------------------------------------------------------


def test_keys_create_prints_the_key_and_nothing_else(tmp_path: Path) -> None:
    """``palette keys create`` bootstraps the first admin: the key alone on standard output
    (so ``KEY=$(palette keys create ...)`` works), stored only as its HMAC."""
    import re

    from service.backends import open_backends
    from service.settings import Settings

    data_dir = tmp_path / "data"
    out = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-m", "palette_native.cli", "keys", "create", "--data-dir",
         str(data_dir), "--tenant", "acme", "--role", "admin", "--name", "bootstrap",
         "--expires-in", "3600"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"pal_live_[0-9a-f]{12}_[0-9A-Za-z]{38}\n", out.stdout)
    key = out.stdout.strip()
    backends = open_backends(Settings(data_dir=data_dir))
    try:
        record = backends.api_keys.get(key.split("_")[2])
    finally:
        backends.close()
    assert record is not None and (record.tenant, record.role, record.name) == (
        "acme", "admin", "bootstrap"
    )
    assert record.expires_at is not None and 3590 < record.expires_at - record.created_at <= 3600
    assert key not in (data_dir / "jobs.sqlite3").read_bytes().decode("latin-1")


def test_keys_create_takes_only_known_roles(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["keys", "create", "--tenant", "acme", "--role", "owner"])
    assert info.value.code == 2 and "invalid choice: 'owner'" in capsys.readouterr().err


def test_audit_verify_on_an_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "audit log intact: 0 entries\n"


# --- analyze and theme -------------------------------------------------------------------


@pytest.fixture()
def scene(tmp_path: Path) -> Path:
    """A JPEG photo stand-in: a textured green-gray background, a red disc right of centre."""
    h, w = 240, 320
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([90 + 20 * np.sin(xx / 37.0), 110 + 15 * np.cos(yy / 23.0),
                      80 + 0 * xx], axis=2) + rng.normal(0, 3, (h, w, 3))
    disc = (yy - h * 0.45) ** 2 + (xx - w * 0.62) ** 2 < (h * 0.18) ** 2
    image[disc] = (220, 30, 40)
    path = tmp_path / "scene.jpg"
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_analyze_json_lines_hold_analysis_to_dict(scene: Path, images: dict[str, Path]) -> None:
    result = run_cli("analyze", str(scene), str(images["two"]), "-k", "4")
    assert result.returncode == 0, result.stderr
    first, second = json_lines(result.stdout.decode())
    assert (first["file"], second["file"]) == (str(scene), str(images["two"]))
    analysis = first["analysis"]
    assert analysis["width"] == 320 and analysis["height"] == 240
    assert 0 < analysis["quality"]["score"] <= 100
    assert set(analysis["quality"]["components"]) == {
        "sharpness", "noise", "exposure", "compression", "contrast", "colorfulness",
        "resolution"}
    assert analysis["quality"]["components"]["compression"]["details"]["jpeg_quality"] == 90
    left, top, width, height = analysis["subject"]["box"]
    assert left <= 320 * 0.62 <= left + width and top <= 240 * 0.45 <= top + height
    assert set(analysis["crops"]) == {"1:1", "16:9"}
    x, y, w, h = analysis["crops"]["16:9"]
    assert abs(w / h - 16 / 9) < 0.02 and x + w <= 320 and y + h <= 240
    for key in ("palette", "subject_palette", "background_palette"):
        assert len(analysis[key]["colors"]) == 4, key
    assert not result.stderr


def test_analyze_failures_are_named_and_others_still_run(
    scene: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jpg"
    result = run_cli("analyze", str(images["corrupt"]), str(scene), str(missing))
    assert result.returncode == 1
    records = json_lines(result.stdout.decode())
    assert [("analysis" in r, r.get("error", {}).get("code")) for r in records] == [
        (False, records[0]["error"]["code"]), (True, None), (False, "file_not_found")]
    err = result.stderr.decode()
    assert f"palette: error: {images['corrupt']}:" in err
    assert f"palette: error: {missing}: no such file [file_not_found]" in err
    assert "2 inputs failed" in err


def test_analyze_text_without_a_terminal_is_plain(scene: Path) -> None:
    result = run_cli("analyze", str(scene), "--format", "text", "-k", "3")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert not ANSI.search(out)
    lines = out.splitlines()
    assert lines[0] == f"{scene}  (320x240)"
    assert re.fullmatch(r"  quality\s+\d+\.\d / 100", lines[1])
    for component in ("sharpness", "noise", "exposure", "compression", "contrast",
                      "colorfulness", "resolution"):
        assert any(re.match(rf"    {component}\s+[01]\.\d{{3}}\s", line) for line in lines)
    assert any(line.startswith("  subject  ") for line in lines)
    crops = [line for line in lines if line.startswith("  crop ")]
    assert [c.split()[1] for c in crops] == ["1:1", "16:9"]
    rows = {line.split("  ")[1].strip(): line for line in lines
            if line.startswith(("  palette", "  subject palette", "  background"))}
    assert set(rows) == {"palette", "subject palette", "background"}
    assert all(len(re.findall(r"#[0-9a-f]{6}", row)) == 3 for row in rows.values())


def test_analyze_terminal_gets_swatch_rows(scene: Path) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    child = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", "analyze", str(scene), "-k", "3"],
        stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = read_pty(master).decode()
    os.close(master)
    assert child.wait(timeout=60) == 0
    swatches = re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m {7}\x1b\[0m", out)
    assert len(swatches) == 9  # three palettes of three colors
    assert any(int(r) > 150 and int(g) < 90 for r, g, _ in swatches)  # the red disc


def test_analyze_bad_colors_is_a_usage_error(scene: Path) -> None:
    result = run_cli("analyze", str(scene), "-k", "300")
    assert result.returncode == 2
    assert b"colors must be between 1 and 256" in result.stderr


@pytest.mark.parametrize("fmt", ["css", "tailwind", "tokens", "json"])
def test_theme_documents(scene: Path, fmt: str) -> None:
    result = run_cli("theme", str(scene), "--format", fmt)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    if fmt == "css":
        assert out.startswith(":root {") and "--theme-primary-40: #" in out
        assert "@media (prefers-color-scheme: dark)" in out
    elif fmt == "tailwind":
        assert "module.exports = " in out and '"primary"' in out
    elif fmt == "tokens":
        tokens = json.loads(out)
        assert tokens["color"]["light"]["primary"]["$type"] == "color"
    else:
        (record,) = json_lines(out)
        assert record["file"] == str(scene)
        pairs = record["theme"]["pairs"]
        assert pairs and all(p["ratio"] >= p["required_ratio"] for p in pairs)
        assert set(record["theme"]["schemes"]) == {"light", "dark"}


def test_theme_text_shows_ramps_schemes_and_pairs(scene: Path) -> None:
    result = run_cli("theme", str(scene), "--format", "text")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert not ANSI.search(out)
    lines = out.splitlines()
    assert lines[0].startswith("theme from #") and lines[0].endswith("(tonal_spot)")
    ramp = next(line for line in lines if line.startswith("  primary "))
    assert len(re.findall(r"#[0-9a-f]{6}", ramp)) == 13
    assert "light scheme" in lines and "dark scheme" in lines
    pairs = [line for line in lines if re.search(r"\d\.\d\d >= \d\.\d", line)]
    assert len(pairs) > 20 and all(line.endswith("ok") for line in pairs)
    assert any("light:on_primary/primary" in line for line in pairs)


def test_theme_terminal_gets_swatch_strips(scene: Path) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    child = subprocess.Popen(
        [sys.executable, "-m", "palette_native.cli", "theme", str(scene)],
        stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = read_pty(master).decode()
    os.close(master)
    assert child.wait(timeout=60) == 0
    assert "\x1b[48;2;0;0;0m       \x1b[0m" in out  # tone 0 of every ramp
    assert re.search(r"\x1b\[38;2;\d+;\d+;\d+;48;2;\d+;\d+;\d+m Aa ", out)  # pair samples


def test_theme_from_a_seed_color_with_a_variant_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "theme.css"
    result = run_cli("theme", "#3366ff", "--variant", "vibrant", "--format", "css",
                     "--output", str(target))
    assert result.returncode == 0 and not result.stdout
    assert target.read_text().startswith(":root {")
    record = json_lines(run_cli("theme", "#3366ff", "--variant", "vibrant").stdout.decode())[0]
    assert (record["theme"]["source"], record["theme"]["variant"]) == ("#3366ff", "vibrant")


def test_theme_errors(tmp_path: Path) -> None:
    missing = run_cli("theme", str(tmp_path / "missing.png"), "--format", "css")
    assert missing.returncode == 1
    assert b"no such file [file_not_found]" in missing.stderr
    bad_seed = run_cli("theme", "#zz")
    assert bad_seed.returncode == 2
    assert b"not a #rrggbb color" in bad_seed.stderr
    bad_variant = run_cli("theme", "#3366ff", "--variant", "loud")
    assert bad_variant.returncode == 2
