"""The bad-input corpus: every broken cfg in tests/cfgs/bad gives a CfgError whose items match the
`# expect:` lines recorded in the file (rendered without the file name), in order; `netcfg check`
prints them and exits 1, never with a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

import netcfg
from netcfg.cli import main

BAD = Path(__file__).parent / "cfgs" / "bad"
#: Files that cannot carry an `# expect:` comment.
NO_HEADER = {
    "empty.cfg": ["1:1: empty cfg: no [net] section and no layers"],
    "junk.cfg": ["1:1: not UTF-8 text (binary file?)"],
}
BAD_FILES = sorted(BAD.glob("*.cfg"))


def expected_items(path: Path) -> list[str]:
    if path.name in NO_HEADER:
        return NO_HEADER[path.name]
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    return [line.removeprefix("# expect:").strip() for line in lines if line.startswith("# expect:")]


def test_the_corpus_is_there():
    assert len(BAD_FILES) >= 19
    assert all(expected_items(path) for path in BAD_FILES)


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_bad_cfg_reports_every_expected_item(path):
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(path)
    items = exc.value.items
    rendered = [str(item).removeprefix(f"{path}:") for item in items]
    expected = expected_items(path)
    assert len(rendered) == len(expected), "\n".join(rendered)
    for got, want in zip(rendered, expected):
        assert got.startswith(want), f"\n got: {got}\nwant: {want}"
    for item in items:
        assert item.file == str(path)
        assert item.line > 0 and item.column > 0


def test_items_carry_structured_location():
    with pytest.raises(netcfg.CfgError) as exc:
        netcfg.parse(BAD / "key-typo.cfg")
    first, second = exc.value.items
    assert (first.line, first.column, first.layer, first.section, first.key) == (10, 1, 0, "convolutional", "sise")
    assert (second.line, second.layer, second.section, second.key) == (14, 1, "maxpool", "strid")


def test_check_prints_every_error_and_exits_1(capsys):
    assert main(["check", *map(str, BAD_FILES)]) == 1
    out = capsys.readouterr().out.splitlines()
    for path in BAD_FILES:
        mine = [line.removeprefix(f"{path}:") for line in out if line.startswith(f"{path}:")]
        assert len(mine) == len(expected_items(path))
        assert all(got.startswith(want) for got, want in zip(mine, expected_items(path)))


def test_check_mixed_good_and_bad_reports_ok_and_fails(capsys):
    assert main(["check", "yolov3-tiny", str(BAD / "groups.cfg")]) == 1
    out = capsys.readouterr().out
    assert "yolov3-tiny: OK" in out
    assert "groups.cfg:9:1: [convolutional #0] groups:" in out


def test_no_traceback_from_the_console_entry_point(tmp_path):
    missing = tmp_path / "missing.cfg"
    result = subprocess.run(
        [sys.executable, "-m", "netcfg", "check", str(BAD / "junk.cfg"), str(missing), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "not UTF-8 text" in result.stdout
    assert f"{missing}: no such cfg file or bundled cfg" in result.stdout
    assert f"{tmp_path}: not a regular file" in result.stdout
