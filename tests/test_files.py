"""Where cfg text comes from: every OS problem is a located CfgError; `[include]` reads only `.cfg` files
inside the include roots and never quotes another file; one definition of a line; bounded reports."""

import os
import time

import pytest

import netcfg

NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"
CONV = "[convolutional]\nfilters=2\nsize=1\n"


def _error(cfg, **kwargs) -> netcfg.CfgError:
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(cfg, **kwargs)
    return exc.value


@pytest.mark.parametrize("name", ["x" * 300, "a/" * 3000 + "b.cfg"])
def test_names_too_long_for_the_os_are_cfg_errors(name):
    assert "no such cfg file" in str(_error(name))


def test_an_include_name_too_long_is_located():
    (item,) = [i for i in _error(NET + "[include]\nfile=" + "y" * 300 + "\n").items if i.key]
    assert (item.line, item.key) == (6, "file") and "no such cfg file" in item.message


def test_a_path_with_brackets_is_a_path(tmp_path):
    path = tmp_path / "net[1].cfg"
    path.write_text(NET + CONV)
    assert len(netcfg.parse(str(path)).layers) == 1


def test_include_outside_the_roots_is_refused_without_quoting_it(tmp_path):
    secret = tmp_path / "outside" / "secret.cfg"
    secret.parent.mkdir()
    secret.write_text("password=hunter2\n")
    main = tmp_path / "inside" / "main.cfg"
    main.parent.mkdir()
    for target in ("/etc/passwd", str(secret), "../outside/secret.cfg"):
        main.write_text(NET + f"[include]\nfile={target}\n")
        error = _error(main)
        assert "hunter2" not in str(error) and "root:" not in str(error)
        assert any("outside the folders an include may read" in item.message for item in error.items), error


def test_include_dirs_opens_a_folder(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "block.cfg").write_text(CONV)
    main = tmp_path / "app" / "main.cfg"
    main.parent.mkdir()
    main.write_text(NET + "[include]\nfile=../lib/block.cfg\n")
    assert "outside the folders" in str(_error(main))
    assert len(netcfg.parse(main, include_dirs=[lib]).layers) == 1


def test_include_reads_only_cfg_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not a cfg\n")
    main = tmp_path / "main.cfg"
    main.write_text(NET + "[include]\nfile=notes.txt\n")
    (item,) = [i for i in _error(main).items if i.key]
    assert "only .cfg files can be included" in item.message and "not a cfg" not in item.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.cfg"
    os.mkfifo(fifo)
    assert "not a regular file" in str(_error(fifo))
    main = tmp_path / "main.cfg"
    main.write_text(NET + "[include]\nfile=pipe.cfg\n")
    assert "not a regular file" in str(_error(main))


@pytest.mark.parametrize("special", ["/dev/zero", "/proc/self/status"])
def test_special_files_are_refused(special):
    if not os.path.exists(special):
        pytest.skip(f"{special} is absent here")
    (item,) = _error(special).items
    assert "not a regular file" in item.message


def test_a_lone_carriage_return_is_a_located_syntax_error():
    (item,) = _error(NET + "[convolutional]\nfilters=2\rsize=3\n").items
    assert (item.line, item.column) == (6, 10) and "cannot parse" in item.message


def test_a_carriage_return_ending_the_text_is_located():
    """Found by the fuzz suite: the whole-text parse failed while every line parsed alone."""
    (item,) = _error(NET + "[convolutional]\nfilters=2\nsize=1\r").items
    assert (item.line, item.column) == (7, 7) and "'size=1\\r'" in item.message


def test_windows_line_ends_are_plain_line_ends():
    assert len(netcfg.parse((NET + CONV).replace("\n", "\r\n")).layers) == 1


@pytest.mark.parametrize("separator", ["\x0c", "\x1c", "\u2028", "\x85"])
def test_only_newlines_end_lines(separator):
    """Later lines keep their numbers whatever other separators a line holds."""
    (item,) = _error(f"# a{separator}b{separator}c\n" + NET + "[convolutional]\nfiltrs=2\n").items
    assert (item.line, item.key) == (7, "filtrs")


def test_reports_are_capped_and_linear():
    keys = "".join(f"zz{i}q=1\n" for i in range(20_000))
    start = time.monotonic()
    error = _error(NET + "[convolutional]\nfilters=2\n" + keys + "sise=3\n", strict=True)
    assert time.monotonic() - start < 30
    assert len(error.items) == 20_001
    lines = str(error).splitlines()
    assert len(lines) == 101 and lines[-1] == "... and 19901 more"


def test_oversized_text_is_refused_before_parsing():
    assert "too large for a cfg" in str(_error(NET + "#" * (17 * 2**20) + "\n"))
