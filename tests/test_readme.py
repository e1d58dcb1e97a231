"""The README's promises: its set-up commands match CI, and its user-section example runs."""

import re
from pathlib import Path

import torch

from netcfg.registry import lookup

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = code_blocks("sh")
    assert len(commands) == 2
    main_job, tests = (c.strip() for c in commands)
    assert main_job.startswith("pip install torch==2.13.0 && ") and "netcfg summary" in main_job
    test_command = tests.split(" && ")[-1]
    assert tests.startswith("pip install torch==2.13.0 && ") and test_command == "python -m pytest -q"
    assert f'TEST_COMMAND="{test_command}"' in (ROOT / ".ci" / "run").read_text()


def test_register_example_builds_a_working_section(scratch_registry):
    (example,) = [block for block in code_blocks("python") if "@register" in block]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    model = namespace["model"]
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(model(x), x * 0.5)
    assert lookup("multiply").model.family == "user"
