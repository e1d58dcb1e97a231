"""Fuzz cases shared by the fuzz tests and the campaign (`fuzz/campaign.py`): generators that draw a
concrete case (cfg text, or weights bytes) from a `random.Random`, and `execute`, which runs one case and
says how it ended. The only endings allowed are a valid result, a located CfgError or a WeightsError;
anything else escapes `execute` and is a finding.
"""

from __future__ import annotations

import contextlib
import io
import random
import typing
import warnings
from pathlib import Path

import torch

import netcfg
from netcfg import cli
from netcfg.budget import Budget
from netcfg.registry import section_types
from netcfg.resources import bundled_cfgs
from netcfg.section import EXAMPLE_NET

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "darknet-cfg"
SHARED_CFGS = sorted(SHARED.glob("*.cfg")) if SHARED.is_dir() else []
FULL_CFGS = [path.read_text(errors="replace") for path in [*bundled_cfgs().values(), *SHARED_CFGS]]
EXAMPLES = {t.name: EXAMPLE_NET + t.model.example for t in section_types() if t.model.example}
#: What build cases may cost: small enough that a build and a forward stay fast.
SMALL = Budget(max_parameters=20_000_000, max_activation_bytes=2**28)

INTS = ["0", "-1", "1", "2", "3", "2147483647", "-2147483647", "2147483648", "-2147483649", "9223372036854775808"]
FLOATS = ["inf", "-inf", "nan", "-0.0", "0", "1e308", "-1e308", "1e-320", "1e999", "0.5"]
LISTS = ["", ",", ",,,", "1,", "0,0,0", "-1,-2", ",".join(["1"] * 3000), ",".join(["2147483648"] * 3)]
STRINGS = ["", "a", "=", "[", "]", "#", "\r", "\x00", "\u2028", "0x10", "1e", "é", "yes", "linear,leaky", "a" * 300]
JUNK = INTS + FLOATS + LISTS[:6] + STRINGS


def field_kind(annotation: object) -> str:
    """`int`, `float`, `bool`, `list` or `str`: what a schema field holds, for choosing extremes."""
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        return "list"
    for arg in args:
        if arg is not type(None) and not isinstance(arg, str):
            return field_kind(arg)
    return "str"


def extremes(kind: str) -> list[str]:
    """The values a field of that kind is tried with: its own extremes, then the other kinds' junk."""
    own = {"int": INTS, "float": FLOATS, "list": LISTS + INTS[:4], "bool": ["0", "1", "2", "-1", "yes"]}
    return own.get(kind, STRINGS) + ["", "nan", "a"]


def schema_keys() -> list[tuple[str, str, str]]:
    """Every (section, cfg key, kind) the registry declares, for the sections that have an example."""
    return [
        (t.name, field.alias or name, field_kind(field.annotation))
        for t in section_types()
        if t.name in EXAMPLES
        for name, field in t.model.model_fields.items()
    ]


def with_value(text: str, section: str, key: str, value: str) -> str:
    """`text` with `key=value` set in the last `[section]`: the line replaced, or added after the header."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip().lower() == f"[{section}]"]
    if not starts:
        return text + f"\n[{section}]\n{key}={value}\n"
    start = starts[-1]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if lines[i].split("=")[0].strip() == key:
            lines[i] = f"{key}={value}"
            return "\n".join(lines)
    lines.insert(start + 1, f"{key}={value}")
    return "\n".join(lines)


def value_case(rng: random.Random) -> str:
    """A section's example with one to three keys from its schema set to extremes."""
    keys = schema_keys()
    section, key, kind = rng.choice(keys)
    text = with_value(EXAMPLES[section], section, key, rng.choice(extremes(kind)))
    same = [k for k in keys if k[0] == section]
    for _ in range(rng.randrange(3)):
        _, key, kind = rng.choice(same)
        text = with_value(text, section, key, rng.choice(extremes(kind)))
    return text


def mutate_lines(rng: random.Random, text: str) -> str:
    """Lines dropped, repeated, swapped; values replaced by junk; keys and headers mangled or added."""
    lines = text.split("\n") or [""]
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines))
        kind = rng.choice(["drop", "repeat", "swap", "value", "key", "header", "splice"])
        if kind == "drop" and len(lines) > 1:
            del lines[i]
        elif kind == "repeat":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value" and "=" in lines[i]:
            lines[i] = lines[i].split("=")[0] + "=" + rng.choice(JUNK)
        elif kind == "key" and "=" in lines[i]:
            lines[i] = rng.choice(["x", "_", "", "[", "layers", "from", "filters"]) + lines[i]
        elif kind == "header":
            names = [*EXAMPLES, "zzz", "", "net", "include"]
            lines.insert(i, f"[{rng.choice(names)}]")
        elif kind == "splice":
            lines[i:i] = rng.choice(list(EXAMPLES.values())).split("\n")[4:]
    return "\n".join(lines)


def mutate_bytes(rng: random.Random, text: str) -> str:
    """Characters flipped, inserted or deleted anywhere (across lines, headers and values)."""
    chars = list(text) or [""]
    alphabet = "[]=#;,.-+0123456789abcxyz \t\r\n\x00\x0b\u2028é"
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(chars))
        action = rng.randrange(3)
        if action == 0:
            chars[i] = rng.choice(alphabet)
        elif action == 1:
            chars.insert(i, rng.choice(alphabet))
        elif len(chars) > 1:
            del chars[i]
    return "".join(chars)


def parse_case(rng: random.Random) -> str:
    """A mutated bundled, shared or example cfg (small examples most often: they parse fastest)."""
    source = rng.choice(FULL_CFGS) if rng.random() < 0.3 else rng.choice(list(EXAMPLES.values()))
    mutate = mutate_lines if rng.random() < 0.6 else mutate_bytes
    return mutate(rng, source)


def build_case(rng: random.Random) -> str:
    """A mutated example (or two spliced), to build and run: small enough for a forward."""
    return mutate_lines(rng, rng.choice(list(EXAMPLES.values()))) if rng.random() < 0.7 else value_case(rng)


BOMBS = [
    "[convolutional]\nfilters={big}\nsize=3\n",
    "[convolutional]\nfilters=8\nsize={big}\npad=1\n",
    "[connected]\noutput={big}\n",
    "[maxpool]\nsize={big}\nstride=1\n",
    "[convolutional]\nfilters=64\nsize=3\npad=1\n[convolutional]\nfilters=64\nsize=3\npad=1\nrepeat={big}\n",
    "[convolutional]\nfilters={big}\nsize=1\n[route]\nlayers=-1,-1,-1,-1,-1,-1,-1,-1\n",
    "[upsample]\nstride={small}\n[upsample]\nstride={small}\n[upsample]\nstride={small}\n",
    "[local]\nfilters=4096\nsize=3\n",
]
BIG = [10**5, 10**6, 10**7, 2**20 + 1, 2**31 - 1]


def bomb_case(rng: random.Random) -> str:
    """A cfg asking for far more memory or layers than a machine has (the default budget refuses it)."""
    size = rng.choice([256, 4096, 10**5, 10**6])
    template = rng.choice(BOMBS)
    net = f"[net]\nwidth={size}\nheight={size}\nchannels=3\n"
    return net + template.format(big=rng.choice(BIG), small=rng.choice([64, 1000, 4096]))


def include_bomb(folder: Path, depth: int) -> Path:
    """A top cfg including a file eight times, which includes the next eight times, `depth` levels deep:
    8**depth convolutions of 1024 filters."""
    for level in range(depth):
        body = "[convolutional]\nfilters=1024\nsize=3\npad=1\n" if level == 0 else _includes(f"fan{level - 1}.cfg")
        (folder / f"fan{level}.cfg").write_text(body)
    top = folder / "top.cfg"
    top.write_text("[net]\nwidth=416\nheight=416\nchannels=3\n" + _includes(f"fan{depth - 1}.cfg"))
    return top


def _includes(file: str) -> str:
    return "".join(f"[include]\nfile={file}\nname=n{i}\n" for i in range(8))


def forward(model: netcfg.Network) -> None:
    """One forward at batch 1 of the shape the network declares."""
    c, h, w = model.spec.input_shape
    with torch.no_grad():
        model(torch.zeros(1, c, h, w))


def _checked(exc: netcfg.CfgError) -> str:
    """A CfgError must be located and say something: its outcome name, else AssertionError."""
    assert exc.items and all(item.message for item in exc.items), repr(exc)
    assert str(exc).strip(), "empty CfgError message"
    return "CfgError"


def run_cfg(text: str, build: bool, budget: Budget = SMALL) -> str:
    """Parse (and build and run, when asked): `valid` or `CfgError`; any other exception escapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if build:
                forward(netcfg.build(text, budget=budget))
            else:
                netcfg.parse(text)
        except netcfg.CfgError as exc:
            return _checked(exc)
    return "valid"


def run_bomb(cfg: str | Path) -> str:
    """Build a bomb: only the budget's (or a bound's) CfgError is allowed, before anything is allocated."""
    try:
        netcfg.build(cfg)
    except netcfg.CfgError as exc:
        _checked(exc)
        return "refused"
    raise AssertionError("a resource bomb was built")


def run_cli(argv: list[str]) -> str:
    """Run the CLI in-process: exit 0, 1 or 2 and no traceback in what it prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code in (0, 1, 2), (code, out.getvalue()[-500:])
    assert "Traceback" not in out.getvalue(), out.getvalue()[-2000:]
    return f"exit {code}"


def _weights(case: tuple[str, bytes]) -> str:
    from fuzzweights import run_weights  # imported late: fuzzweights builds its network on first use

    return run_weights(case)


#: What each kind of case runs, by name: the sandbox's runners, for the tests and the campaign.
RUNNERS = {
    "parse": lambda text: run_cfg(text, build=False),
    "build": lambda text: run_cfg(text, build=True),
    "values": lambda text: run_cfg(text, build=True),
    "bombs": run_bomb,
    "weights": _weights,
    "cli": run_cli,
}
#: The outcomes each kind may end with.
ALLOWED = {
    "parse": {"valid", "CfgError"},
    "build": {"valid", "CfgError"},
    "values": {"valid", "CfgError"},
    "bombs": {"refused"},
    "weights": {"loaded", "partial", "WeightsError"},
    "cli": {"exit 0", "exit 1", "exit 2"},
}
