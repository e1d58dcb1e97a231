"""Code generation's names and inputs: class names are derived and validated, the convert command
reports its errors, and hostile cfg text, labels and file names never become code."""

from __future__ import annotations

import ast

import pytest
import torch
from codegenkit import LABELLED, TINY, assert_equivalent, assert_imports_only, load_class, state_shapes
from torch import nn

import netcfg
from netcfg.cli import main as cli_main
from netcfg.codegen import IDENTIFIER, default_class_name, literal, to_python
from netcfg.section import EXAMPLE_NET, LayerCall
from netcfg.sections.resample import UpsampleSection

# ------------------------------------------------------------------------------------------------
# names and the command line


def test_class_names_are_derived_and_validated():
    assert default_class_name("cfgs/yolov3-tiny.cfg") == "Yolov3Tiny"
    assert default_class_name("3d.net.cfg") == "Net3dNet"
    assert default_class_name("<cfg>") == default_class_name("é-è.cfg") == "Network"
    assert default_class_name("none.cfg") == "NetNone"
    assert "class MyNet(nn.Module):" in to_python(TINY, class_name="MyNet")
    for bad in ("my net", "class", "__import__", "a;b", "DarknetConv", "torch", "1Net"):
        with pytest.raises(ValueError):
            to_python(TINY, class_name=bad)


@pytest.mark.parametrize(
    "name", ["super", "float", "tuple", "list", "range", "Exception", "torch", "nn", "annotations"]
)
def test_class_name_may_not_shadow_a_builtin_or_a_module_global(name, tmp_path, capsys):
    with pytest.raises(ValueError, match=f"class name '{name}' (would shadow|collides)"):
        to_python(TINY, class_name=name)
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY)
    assert cli_main(["convert", str(cfg), "--class-name", name, "-o", str(tmp_path / "out.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"netcfg convert: error: class name '{name}' ") and err.count("\n") == 1
    assert not (tmp_path / "out.py").exists()


def test_standalone_class_name_may_not_shadow_an_inlined_name():
    for name in ("F", "DarknetConv", "activation", "Mish"):
        with pytest.raises(ValueError, match="collides"):
            to_python(TINY, class_name=name, standalone=True)
    assert default_class_name("exception.cfg") == "NetException"


def test_convert_command(tmp_path, capsys):
    cfg = tmp_path / "tiny-net.cfg"
    cfg.write_text(TINY)
    out = tmp_path / "model.py"
    assert cli_main(["convert", str(cfg), "-o", str(out), "--class-name", "Generated", "--standalone"]) == 0
    assert "from netcfg" not in out.read_text()
    assert state_shapes(load_class(out.read_text(), tmp_path, "model")()) == state_shapes(netcfg.build(cfg))
    assert cli_main(["convert", str(cfg)]) == 0
    assert "class TinyNet(nn.Module):" in capsys.readouterr().out
    (tmp_path / "bad.cfg").write_text("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=0\n")
    assert cli_main(["convert", str(tmp_path / "bad.cfg")]) == 1
    assert "bad.cfg:5:" in capsys.readouterr().err
    assert cli_main(["convert", str(cfg), "--class-name", "not valid"]) == 2
    assert capsys.readouterr().err == "netcfg convert: error: class name 'not valid' is not a Python identifier\n"
    assert cli_main(["convert", str(cfg), "--class-name", "DarknetConv"]) == 2
    assert "collides" in capsys.readouterr().err
    assert cli_main(["convert", str(cfg), "--width", "64", "--height", "96", "-o", str(out)]) == 0
    assert "(input 3x96x64)" in out.read_text()
    assert cli_main(["convert", str(cfg), "-o", str(tmp_path / "missing" / "out.py")]) == 1
    assert "cannot write" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# safety

PAYLOAD = '__import__("os").system("echo pwned")'
BANNED_CALLS = {"__import__", "eval", "exec", "compile", "open", "getattr", "globals", "system", "popen"}


def assert_inert(source: str) -> None:
    """Only the fixed imports, no dangerous calls, and every string constant identifier-like."""
    tree = ast.parse(source)
    assert_imports_only(source, {"__future__", "torch", "netcfg"})
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body and isinstance(n.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            assert called not in BANNED_CALLS
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            assert IDENTIFIER.match(node.value), node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            assert getattr(node, "id", getattr(node, "attr", None)) not in BANNED_CALLS
    *imports, cls = tree.body
    assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in imports)
    assert isinstance(cls, ast.ClassDef) and [type(n) for n in cls.body] == [ast.Expr, ast.FunctionDef, ast.FunctionDef]
    assert [n.name for n in cls.body[1:]] == ["__init__", "forward"]


HOSTILE = {
    "value": f"[convolutional]\nfilters=4{PAYLOAD}\nsize=1\n",
    "quotes": '[convolutional]\nfilters="4"\nsize=1\n',
    "activation": f"[convolutional]\nfilters=4\nsize=1\nactivation={PAYLOAD}\n",
    "activation_quote": '[convolutional]\nfilters=4\nsize=1\nactivation=leaky")\n',
    "newline": '[convolutional]\nfilters=4\nsize=1\nactivation=leaky\n__import__("os")\n',
    "comment": f"[convolutional]\nfilters=4\nsize=1\nactivation=leaky# {PAYLOAD}\n",
    "reference": f"[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=-1,{PAYLOAD}\n",
    "name": f"[convolutional]\nfilters=4\nsize=1\nname={PAYLOAD}\n[route]\nlayers=-1,0\n",
    "name_newline": '[convolutional]\nfilters=4\nsize=1\nname=a"""\n"""\n[route]\nlayers=-1,0\n',
    "section": f"[{PAYLOAD}]\nfilters=4\n",
    "training_keys": f"policy={PAYLOAD}\n[convolutional]\nfilters=4\nsize=1\nlearning_rate={PAYLOAD}\n",
    "inf": "[upsample]\nstride=2\nscale=1e999\n",
    "nan": "[upsample]\nstride=2\nscale=nan\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_cfgs_are_rejected_or_inert(case):
    cfg = EXAMPLE_NET + HOSTILE[case]
    try:
        source = to_python(cfg)
    except netcfg.CfgError:
        return
    assert_inert(source)
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    assert state_shapes(namespace["Network"]()) == state_shapes(netcfg.build(cfg))


def test_infinity_never_reaches_the_generated_code():
    with pytest.raises(netcfg.CfgError, match="scale: inf is not a finite number"):
        to_python(EXAMPLE_NET + HOSTILE["inf"])


def test_hostile_labels_and_file_names_stay_in_comments(tmp_path):
    evil = tmp_path / f'evil"""\n{PAYLOAD}#.cfg'
    evil.write_text(
        EXAMPLE_NET + "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=-1,0\n"
    )
    spec = netcfg.parse(evil)
    spec.labels[f'x"""\n{PAYLOAD}\r\n# '] = 0  # a label netcfg's own rules would refuse
    source = to_python(spec)
    assert_inert(source)
    assert "x_import_os_system_echo_pwned = x" in source  # the label, as a sanitised variable name
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    model = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module)][-1]()
    assert state_shapes(model) == state_shapes(netcfg.build(spec))


def test_labels_name_variables_and_the_input_can_be_read_later(tmp_path):
    cfg = LABELLED
    source = to_python(cfg, class_name="Generated")
    assert "net_input = x\n" in source and "x = x + net_input\n" in source and "del net_input" not in source
    assert "body = x\n" in source and "torch.cat([body, x], dim=1)" in source
    assert "# 1: [convolutional] body at cfg:" in source
    assert_equivalent(netcfg.parse(cfg), tmp_path)


def test_literal_accepts_only_plain_values():
    assert literal((1, 2.5, True, None, "leaky", ((1.0, -2.0),))) == '(1, 2.5, True, None, "leaky", ((1.0, -2.0),))'
    assert literal([3]) == "[3]" and literal((3,)) == "(3,)"
    assert literal(float("-inf")) == '-float("inf")'
    for bad in ('a"b', "x\ny", "__import__('os')", "", "a b", float("nan"), b"x", object(), {"a": 1}, 1j):
        with pytest.raises((TypeError, ValueError)):
            literal(bad)


@pytest.mark.parametrize("value", ["1.0); __import__('os')", torch.ones(1), float("nan")])
def test_a_module_factory_returning_unprintable_arguments_is_refused(monkeypatch, value):
    from netcfg.modules.resample import Upsample

    monkeypatch.setattr(UpsampleSection, "layer", lambda self, shapes, ctx: LayerCall(Upsample, {"scale": value}))
    with pytest.raises(netcfg.CfgError) as exc:
        to_python(EXAMPLE_NET + "[upsample]\nstride=2\n")
    assert exc.value.items[0].line == 5 and "cannot write" in exc.value.items[0].message
