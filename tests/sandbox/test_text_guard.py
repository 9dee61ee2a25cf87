"""What a program may turn into text: values, never an object whose text shows its address.

The worker compiles every program with its text-making (``str``, f-strings, ``%``) routed
through a check (``worker._GuardText``); ``ValidatedProgram.compile_function`` uses the same
compile, so these run in-process.
"""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.sandbox import ProgramRejected, validate_program

HONEST = """
def compute_reward(x):
    label = f"{x[0]:.2f}|{str(3)}|{'%d-%s' % (2, 'a')}|{[1.5, (2, 'b')]}|{np.arange(2)}"
    names = list(map(str, [1, 2.5, True, None]))
    text = "n=%d" % 4
    text %= ()
    wrapped = (x % 2.0) + (7 % 3)
    kinds = [isinstance(v, str) for v in (label, 1)] + [isinstance(label, (int, str))]
    total = wrapped + len(label) + len(names) + len(text) + sum(kinds)
    return total, {"wrapped": wrapped}
"""


def test_values_still_make_text_and_remainders_still_work() -> None:
    program = validate_program(HONEST, ["x"])
    reward, components = program.compile_function()(np.array([3.0, 4.5]))
    label = "3.00|3|2-a|[1.5, (2, 'b')]|[0 1]"
    expected = np.array([1.0, 0.5]) + 1 + len(label) + 4 + 3 + 2
    np.testing.assert_allclose(reward, expected)
    np.testing.assert_allclose(components["wrapped"], [2.0, 1.5])


@pytest.mark.parametrize(
    "expression",
    [
        "str(compute_reward)",
        'f"{compute_reward}"',
        'f"{compute_reward!r}"',
        'f"{1:{compute_reward}}"',  # a nested field in a format spec
        '"%s" % (compute_reward,)',
        '"%(f)s" % {"f": compute_reward}',
        "str([[x].append])",
        "list(map(str, [len]))[0]",
        'f"{np.array([compute_reward, 0])}"',
        'f"{(v for v in x)}"',
        "str({1: {2: [compute_reward]}})",
        # Hidden in isinstance's types, where str stays the type.
        'isinstance(x, (str,) if (t := f"{compute_reward}") else (str,)) and t',
        "isinstance(x, str if (t := str(compute_reward)) else str) and t",
    ],
)
def test_text_of_an_object_with_an_address_is_refused(expression: str) -> None:
    source = f"def compute_reward(x):\n    text = {expression}\n    return x + len(text), {{}}\n"
    function = validate_program(source, ["x"]).compile_function()
    with pytest.raises(TypeError, match="cannot be turned into text"):
        function(np.zeros(2))


def test_a_percent_format_on_an_element_is_refused_and_its_rewrite_runs() -> None:
    element = "def compute_reward(x):\n    t = [x]\n    t[0] %= 2.0\n    return t[0], {}\n"
    with pytest.raises(ProgramRejected, match=r"`t\[0\] %= \.\.\.` is not allowed: write"):
        validate_program(element, ["x"])
    rewritten = element.replace("t[0] %= 2.0", "t[0] = t[0] % 2.0")
    reward, _ = validate_program(rewritten, ["x"]).compile_function()(np.array([3.0]))
    np.testing.assert_allclose(reward, [1.0])


@pytest.mark.parametrize(
    "source",
    [
        "def compute_reward(x):\n    str = 1\n    return x, {}\n",
        "def compute_reward(str):\n    return str, {}\n",
        "def str(x):\n    return x\n\ndef compute_reward(x):\n    return x, {}\n",
    ],
)
def test_str_cannot_be_redefined(source: str) -> None:
    with pytest.raises(ProgramRejected, match="`str` cannot be redefined"):
        validate_program(source, ["x", "str"])
