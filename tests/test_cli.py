"""The `netcfg` command: summary, list and the subcommand table (check is in test_bad_input)."""

import argparse
import subprocess
import sys

import pytest

from netcfg import cli
from netcfg.cli import main
from netcfg.reference import markdown


def test_check_warns_about_a_repeated_key_and_passes(capsys, tmp_path):
    cfg = tmp_path / "twice.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\n[convolutional]\nfilters=4\nfilters=6\n")
    assert main(["check", str(cfg)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{cfg}: OK\n"
    assert captured.err.startswith("warning: ") and ":6:" in captured.err and "line 5" in captured.err


def test_summary_of_yolov3_at_416_matches_darknets_total(capsys):
    assert main(["summary", "yolov3.cfg"]) == 0
    out = capsys.readouterr().out
    assert "input 416 x 416 x 3" in out
    totals = "layers: 107   parameters: 61,949,149   total BFLOPs: 65.879 (32.939 G multiply-adds)"
    assert out.splitlines()[-2] == totals


def test_summary_size_overrides_and_bundled_name(capsys):
    assert main(["summary", "yolov3-tiny", "--width", "320", "--height", "256"]) == 0
    out = capsys.readouterr().out
    assert "input 320 x 256 x 3" in out
    row0 = next(line for line in out.splitlines() if line.lstrip().startswith("0 "))
    assert " 320 x 256 x    3 ->  320 x 256 x   16 " in row0


def test_summary_counts_on_the_meta_device_what_it_would_count_on_cpu(capsys, monkeypatch):
    assert main(["summary", "yolov3-tiny"]) == 0
    on_cpu = capsys.readouterr().out
    monkeypatch.setattr(cli, "META_SUMMARY_BYTES", 0)
    assert main(["summary", "yolov3-tiny"]) == 0
    assert capsys.readouterr().out == on_cpu


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_summary_of_a_huge_input_allocates_no_layer_outputs():
    """At 100,000 × 416 one forward keeps 6.5 GB of outputs alive (within the budget); summary's
    count runs on the meta device instead, in a fresh process that stays far below that."""
    code = (  # VmHWM, not ru_maxrss: that carries the forking test process's own peak across exec
        "import re\nfrom netcfg.cli import main\n"
        "code = main(['summary', 'yolov3-tiny', '--width', '100000'])\n"
        "status = open('/proc/self/status').read()\n"
        "print(code, int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    code, peak_mib = map(int, run.stdout.split()[-2:])
    assert code == 0 and peak_mib < 1500
    assert "peak layer outputs 6.496 GB" in run.stdout


def test_summary_bad_override_is_a_located_error(capsys):
    assert main(["summary", "yolov3-tiny", "--width", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("yolov3-tiny.cfg:") and "[net] width: input should be greater than 0" in err


def test_summary_of_missing_file_says_so(capsys, tmp_path):
    assert main(["summary", str(tmp_path / "nothing.cfg")]) == 1
    assert "no such cfg file or bundled cfg" in capsys.readouterr().err


def test_list_shows_bundled_cfgs_and_section_keys(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("yolov3.cfg", "yolov3-spp.cfg", "yolov3-tiny.cfg"):
        assert name in out
    assert "Section types, family darknet:" in out
    assert "[convolutional] (also conv)" in out
    assert "filters=1 size=1 stride=1" in out
    assert "layers=required" in out


def test_list_markdown_is_the_reference(capsys):
    assert main(["list", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown()


def test_a_subcommand_is_one_table_entry(monkeypatch, capsys):
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("word")

    def run(args: argparse.Namespace) -> int:
        print(args.word.upper())
        return 3

    monkeypatch.setitem(cli.COMMANDS, "shout", cli.Command("shout a word", arguments, run))
    assert main(["shout", "hi"]) == 3
    assert capsys.readouterr().out == "HI\n"


def test_unknown_subcommand_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_summary_of_resnet50_shows_about_4_1_g_multiply_adds(capsys):
    assert main(["summary", "resnet50"]) == 0
    last = capsys.readouterr().out.splitlines()[-2]
    assert "parameters: 25,557,032" in last and "(4.088 G multiply-adds)" in last
