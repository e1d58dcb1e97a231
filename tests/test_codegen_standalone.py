"""Standalone code generation: the output runs in a Python where netcfg cannot be imported, with
netcfg's and user blocks' code inlined; and generated code passes ruff, its comments pointing at cfg lines."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from codegenkit import (
    LAYER_TYPES,
    REPO,
    SHARED_CFGS,
    TINY,
    assert_equivalent,
    assert_imports_only,
    reference,
    state_shapes,
)
from torch import nn

import netcfg
from netcfg.codegen import to_python
from netcfg.section import EXAMPLE_NET, LayerCall
from netcfg.sections.resample import UpsampleSection

# ------------------------------------------------------------------------------------------------
# standalone, in a Python where netcfg cannot be imported

CHECKER = """
import importlib.util, json, sys

sys.modules["netcfg"] = None  # netcfg may be installed here (as in CI): make any import of it fail
import torch

torch.set_num_threads(1)  # as in the parent (conftest.py), so sums run in the same order
try:
    import netcfg  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("netcfg must not be importable here")
results = {}
for case in json.load(open("cases.json")):
    spec = importlib.util.spec_from_file_location(case, case + ".py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = torch.load(case + ".pt")
    model = module.Generated()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(data["state"])
    model.eval()
    with torch.no_grad():
        out = model(data["x"])
    out = list(out) if isinstance(out, list) else [out]
    errors = [((e - a).abs().max() / e.abs().max().clamp_min(1e-30)).item() for e, a in zip(data["expected"], out)]
    results[case] = {"shapes": shapes, "error": max(errors), "outputs": len(out)}
json.dump(results, sys.stdout)
"""


def _standalone_cases() -> dict[str, netcfg.Spec]:
    cases = {f"section_{t.name}": netcfg.parse(EXAMPLE_NET + t.model.example) for t in LAYER_TYPES}
    cases["tiny"] = netcfg.parse(TINY)
    for name in ("yolov4-tiny.cfg",):
        if (SHARED_CFGS / name).is_file():
            cases[Path(name).stem.replace("-", "_").replace(".", "_")] = netcfg.parse(
                SHARED_CFGS / name, width=64, height=64
            )
    return cases


def test_standalone_output_runs_without_netcfg(tmp_path):
    expected = {}
    for case, spec in _standalone_cases().items():
        source = to_python(spec, class_name="Generated", standalone=True)
        assert_imports_only(source, {"__future__", "torch", *sys.stdlib_module_names})
        net, x, outputs = reference(spec)
        torch.save({"state": net.state_dict(), "x": x, "expected": outputs}, tmp_path / f"{case}.pt")
        (tmp_path / f"{case}.py").write_text(source, encoding="utf-8")
        expected[case] = (state_shapes(net), len(outputs))
    (tmp_path / "cases.json").write_text(json.dumps(sorted(expected)))
    (tmp_path / "check.py").write_text(CHECKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    run = subprocess.run(
        [sys.executable, "-I", "check.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert sorted(results) == sorted(expected)
    for case, (shapes, outputs) in expected.items():
        assert {k: tuple(v) for k, v in results[case]["shapes"].items()} == shapes, case
        assert results[case]["outputs"] == outputs
        assert results[case]["error"] <= 1e-6, case


def test_standalone_inlines_dependencies_in_order():
    source = to_python(EXAMPLE_NET + "[convolutional]\nfilters=4\nsize=1\nactivation=mish\n", standalone=True)
    tree = ast.parse(source)
    defined = [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    for name in ("Mish", "activation", "DarknetConv"):
        assert defined.count(name) == 1
    assert defined.index("Mish") < defined.index("activation") < defined.index("DarknetConv") < len(defined) - 1
    assert "netcfg" not in {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


PLUGIN_A = """
from __future__ import annotations

import torch
from torch import nn

from . import b


def _helper(x: torch.Tensor) -> torch.Tensor:
    return x + 1.0


class Block(nn.Module):
    \"\"\"A user block whose helpers collide by name across modules.\"\"\"

    def __init__(self, channels: int, mode: str = "plus"):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .b import SCALE as factor

        return _helper(b._helper(self.conv(x))) * factor
"""

PLUGIN_B = """
SCALE = 3.0


def _helper(x):
    return x * SCALE
"""


def test_user_blocks_are_inlined_with_colliding_names_renamed(tmp_path, monkeypatch):
    package = tmp_path / "codegen_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(PLUGIN_A)
    (package / "b.py").write_text(PLUGIN_B)
    monkeypatch.syspath_prepend(str(tmp_path))
    from codegen_plugin.a import Block

    monkeypatch.setattr(
        UpsampleSection, "layer", lambda self, shapes, ctx: LayerCall(Block, {"channels": shapes[0][0]})
    )
    spec = netcfg.parse(EXAMPLE_NET + "[upsample]\nstride=1\n[upsample]\nstride=1\n")
    source = to_python(spec, class_name="Generated", standalone=True)
    assert "def _helper_b(x):" in source
    assert "-> torch.Tensor:\n        return _helper(_helper_b(self.conv(x))) * SCALE\n" in source
    assert "from .b" not in source and "codegen_plugin" not in source
    out = tmp_path / "generated_code"
    out.mkdir()
    (out / "plugin_standalone.py").write_text(source)
    assert_ruff_clean(out)
    assert_equivalent(spec, tmp_path, standalone=True)
    assert "from codegen_plugin.a import Block" in to_python(spec)


def test_torch_modules_are_written_as_nn_attributes(monkeypatch, tmp_path):
    monkeypatch.setattr(
        UpsampleSection,
        "layer",
        lambda self, shapes, ctx: LayerCall(nn.Upsample, {"scale_factor": 2.0, "mode": "nearest"}),
    )
    spec = netcfg.parse(EXAMPLE_NET + "[convolutional]\nfilters=4\nsize=1\n[upsample]\n")
    source = to_python(spec, standalone=True)
    assert "nn.Upsample(scale_factor=2.0)," in source and "class Upsample" not in source
    assert_equivalent(spec, tmp_path, standalone=True)


# ------------------------------------------------------------------------------------------------
# formatting


def test_generated_code_passes_ruff(tmp_path):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not on PATH")
    sources = {"tiny.py": to_python(TINY), "tiny_standalone.py": to_python(TINY, standalone=True)}
    for t in LAYER_TYPES:
        sources[f"{t.name}_standalone.py"] = to_python(EXAMPLE_NET + t.model.example, standalone=True)
    if (SHARED_CFGS / "yolov4-csp-s-mish.cfg").is_file():
        sources["csp.py"] = to_python(SHARED_CFGS / "yolov4-csp-s-mish.cfg")
    for name, source in sources.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    assert_ruff_clean(tmp_path)


def assert_ruff_clean(directory: Path) -> None:
    """`ruff check` and `ruff format --check` with the project's settings pass on every file there."""
    ruff = shutil.which("ruff")
    if ruff is None:
        return
    config = ["--config", str(REPO / "pyproject.toml")]
    for command in (["check", "--no-cache"], ["format", "--check", "--diff", "--no-cache"]):
        run = subprocess.run([ruff, *command, *config, str(directory)], capture_output=True, text=True, cwd=REPO)
        assert run.returncode == 0, run.stdout + run.stderr


def test_header_names_the_cfg_and_comments_point_at_lines():
    path = SHARED_CFGS / "yolov3-tiny.cfg"
    if not path.is_file():
        pytest.skip("../shared/darknet-cfg is not present")
    source = to_python(path)
    assert source.startswith("# Generated by netcfg from yolov3-tiny.cfg")
    assert "class Yolov3Tiny(nn.Module):" in source
    assert "# 0: [convolutional] at yolov3-tiny.cfg:25 -> 16x416x416" in source
    assert "# 23: [yolo] at yolov3-tiny.cfg:174" in source
