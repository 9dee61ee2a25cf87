"""Reward programs: extraction from LLM responses and static validation (no process here)."""

from __future__ import annotations

import hashlib
import inspect
import math

import numpy as np
import pytest

from rewardlab.sandbox.validation import (
    _METHOD_DTYPE_SLOTS,
    _NUMPY_DTYPE_SLOTS,
    _NUMPY_DTYPES,
    ALLOWED_ATTRIBUTES,
    MATH_ALLOWED,
    MAX_RESPONSE_CHARS,
    NUMPY_ALLOWED,
    NUMPY_LINALG_ALLOWED,
    SAFE_BUILTINS,
    UNSAFE_KEYWORDS,
    ProgramRejected,
    ValidatedProgram,
    extract_code,
    validate_program,
)

VARIABLES = {
    "agent_pos": (2,),
    "goal_pos": (2,),
    "block_pos": (3,),
    "target_pos": (3,),
    "gripper_pos": (3,),
    "carrying_key": (),
}

GRIDWORLD = '''
def compute_reward(agent_pos, goal_pos):
    """Dense shaping towards the goal cell, plus a bonus on arrival."""
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1).astype(np.float64)
    reached = (dist == 0).astype(np.float64)
    return -0.1 * dist + 10.0 * reached, {"distance": -0.1 * dist, "goal_bonus": 10.0 * reached}
'''

PUSH = """
def compute_reward(block_pos, target_pos, gripper_pos):
    block_to_target = np.linalg.norm(block_pos - target_pos, axis=-1)
    gripper_to_block = np.linalg.norm(gripper_pos - block_pos, axis=-1)
    push_temp = 5.0
    reach_temp = 10.0
    push = np.exp(-push_temp * block_to_target)
    reach = 0.5 * np.exp(-reach_temp * gripper_to_block)
    success = np.where(block_to_target < 0.05, 1.0, 0.0)
    total = push + reach + success
    return total, {"push": push, "reach": reach, "success": success}
"""

# Eureka-style: type hints naming types the program cannot see (annotations are never
# evaluated), a helper with a literal default, a lambda, an if, math.
HELPER = '''
def smooth_tolerance(distance, margin=0.1):
    """1 inside the margin, decaying smoothly outside it."""
    scaled = np.maximum(distance - margin, 0.0) / margin
    return 1.0 / (1.0 + scaled ** 2)


def compute_reward(
    block_pos: np.ndarray, target_pos: torch.Tensor, carrying_key
) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    horizontal = np.linalg.norm(block_pos[:, :2] - target_pos[:, :2], axis=-1)
    height = np.abs(block_pos[:, 2] - target_pos[:, 2])
    near = smooth_tolerance(horizontal)
    level = smooth_tolerance(height, margin=0.02)
    key_bonus = np.where(carrying_key, 0.25, 0.0)
    parts = {"near": near, "level": level, "key": key_bonus}
    total = sum(parts.values()) / len(parts)
    squash = lambda x: np.clip(x, 0.0, math.pi)
    if total.shape[0] > 0:
        total = squash(total)
    return total, parts
'''

GOOD = {"gridworld": GRIDWORLD, "push": PUSH, "helper": HELPER}


def batch(names: tuple[str, ...], n: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        shape = VARIABLES[name]
        if name == "carrying_key":
            out[name] = rng.random(n) < 0.5
        elif name in ("agent_pos", "goal_pos"):
            out[name] = rng.integers(0, 5, size=(n, *shape))
        else:
            out[name] = rng.normal(size=(n, *shape))
    return out


def rejected(source: str, variables: object = VARIABLES) -> ProgramRejected:
    with pytest.raises(ProgramRejected) as info:
        validate_program(source, variables)  # type: ignore[arg-type]
    return info.value


# -- extraction -------------------------------------------------------------------------------


def test_extract_fenced_block() -> None:
    text = "Here is the reward:\n```python\ndef compute_reward(x):\n    return x, {}\n```\nDone."
    assert extract_code(text) == "def compute_reward(x):\n    return x, {}\n"


def test_extract_takes_the_last_python_block_defining_the_entry() -> None:
    text = (
        "First try:\n```python\ndef compute_reward(x):\n    return 1\n```\n"
        "A helper alone:\n```python\ndef helper(x):\n    return x\n```\n"
        "Final:\n```python\ndef compute_reward(x):\n    return 2\n```\n"
        "Shell:\n```bash\nrm -rf /\n```\n"
    )
    assert extract_code(text) == "def compute_reward(x):\n    return 2\n"


def test_extract_prefers_python_blocks_then_any_block() -> None:
    python_then_plain = (
        "```python\ndef compute_reward(x):\n    return 1\n```\n"
        "```\ndef compute_reward(x):\n    return 2\n```\n"
    )
    assert extract_code(python_then_plain).endswith("return 1\n")
    untagged = "```\ndef compute_reward(x):\n    return 3\n```"
    assert extract_code(untagged).endswith("return 3\n")


def test_extract_unclosed_final_block_and_indented_fence() -> None:
    truncated = "Sure!\n```python\ndef compute_reward(x):\n    return x, {}\n"
    assert extract_code(truncated) == "def compute_reward(x):\n    return x, {}\n"
    indented = "1. Code:\n   ```python\n   def compute_reward(x):\n       return x, {}\n   ```\n"
    assert extract_code(indented) == "def compute_reward(x):\n    return x, {}\n"


def test_extract_raw_code_without_fences() -> None:
    raw = "def compute_reward(x):\n    return x, {}\n"
    assert extract_code(raw) == raw


@pytest.mark.parametrize(
    "text",
    [
        "I cannot write a reward for this task.",
        "The reward should be def compute_reward(x) returning the distance.",  # prose only
        "```python\ndef reward(x):\n    return x\n```",  # a block without compute_reward
        "",
    ],
    ids=["no-block", "prose", "block-without-entry", "empty"],
)
def test_extract_rejects_responses_without_a_program(text: str) -> None:
    with pytest.raises(ProgramRejected) as info:
        extract_code(text)
    assert info.value.reason == "no_code"
    assert "```python code block defining compute_reward" in info.value.message


def test_extract_never_evaluates() -> None:
    # A response whose code would fail loudly if run: extraction only parses it.
    text = "```python\nraise SystemExit(1)\ndef compute_reward(x):\n    return x, {}\n```"
    assert extract_code(text).startswith("raise SystemExit(1)")


def test_extract_refuses_long_responses_before_reading_them() -> None:
    program = "```python\ndef compute_reward(x):\n    return x, {}\n```"
    assert extract_code(program, max_chars=len(program)).startswith("def compute_reward")
    with pytest.raises(ProgramRejected) as info:
        extract_code(program, max_chars=len(program) - 1)
    assert info.value.reason == "too_large"
    assert f"at most {len(program) - 1} are read" in info.value.message
    with pytest.raises(ProgramRejected, match=f"at most {MAX_RESPONSE_CHARS} are read"):
        extract_code("\n" * (MAX_RESPONSE_CHARS + 1))


LINES = 200_000
PROGRAM = "def compute_reward(x):\n    return x, {}\n"
BLOCK = "```python\n" + PROGRAM + "```\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\n" * LINES, None),
        ("Let me think.\n" + " \t\n" * LINES + "No code after all.", None),
        ("```python\n" + "\n" * LINES + "```\n" + BLOCK, PROGRAM),
        ("```\n" * LINES + BLOCK, PROGRAM),
        ("```python\n" + "\n" * LINES + PROGRAM, "\n" * LINES + PROGRAM),
        ("def \n" * LINES, None),
        ("x" * (4 * LINES) + "\n" + BLOCK, PROGRAM),
        ("`" * (4 * LINES), None),
    ],
    ids=[
        "blank-lines",
        "whitespace-lines",
        "blank-block-then-program",
        "many-fences",
        "unclosed-block",
        "many-defs",
        "long-line",
        "backticks-without-newline",
    ],
)
def test_extract_is_linear_on_pathological_responses(text: str, expected: str | None) -> None:
    # Each response has 200k lines or 800k characters. The regex this replaced backtracked over
    # every run of blank lines from every line start: the first three cases took 43 s, 6 min
    # and 67 s with it (this would not finish in a normal run); the line scanner takes
    # ~50 ms for each.
    if expected is None:
        with pytest.raises(ProgramRejected) as info:
            extract_code(text)
        assert info.value.reason == "no_code"
    else:
        assert extract_code(text) == expected


# -- good programs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_programs_validate_and_run(name: str) -> None:
    program = validate_program(GOOD[name], VARIABLES)
    assert program.sha256 == hashlib.sha256(GOOD[name].encode()).hexdigest()
    assert program.parameter_shapes == tuple(VARIABLES[p] for p in program.parameters)
    inputs = batch(program.parameters)
    reward, components = program.compile_function()(**inputs)
    assert reward.shape == (5,)
    assert all(value.shape == (5,) for value in components.values())


def test_good_program_values() -> None:
    program = validate_program(GRIDWORLD, ["agent_pos", "goal_pos"])
    assert program.parameters == ("agent_pos", "goal_pos")
    assert program.parameter_shapes == (None, None)
    reward, components = program.compile_function()(
        np.array([[0, 0], [2, 3]]), np.array([[0, 0], [0, 0]])
    )
    np.testing.assert_allclose(reward, [10.0, -0.5])
    np.testing.assert_allclose(components["distance"], [0.0, -0.5])


def test_compile_function_uses_the_restricted_builtins() -> None:
    program = ValidatedProgram("def compute_reward(x):\n    return open, {}\n", ("x",))
    with pytest.raises(NameError, match="open"):
        program.compile_function()(np.zeros(1))


def test_allow_lists_name_real_attributes() -> None:
    assert all(hasattr(np, name) for name in NUMPY_ALLOWED)
    assert all(hasattr(np.linalg, name) for name in NUMPY_LINALG_ALLOWED)
    assert all(hasattr(math, name) for name in MATH_ALLOWED)
    for dangerous in ("load", "save", "fromfile", "memmap", "ctypeslib", "lib", "random"):
        assert dangerous not in NUMPY_ALLOWED
    for dangerous in ("open", "eval", "exec", "getattr", "type", "print"):
        assert dangerous not in SAFE_BUILTINS
    # numpy's lazy imports from C need an __import__; it imports numpy and nothing else.
    importer = SAFE_BUILTINS["__import__"]
    assert importer("numpy._core._methods").__name__ == "numpy"  # type: ignore[operator]
    with pytest.raises(ImportError, match="cannot import 'os'"):
        importer("os")  # type: ignore[operator]


def test_lambda_comprehensions_and_elif_chains_are_allowed() -> None:
    elifs = "".join(f"    elif n == {i}:\n        y = {i}\n" for i in range(40))
    source = (
        "def compute_reward(agent_pos):\n"
        "    n = 1\n"
        "    y = 0\n"
        "    if n == -1:\n        y = -1\n" + elifs + "    f = lambda a: a * 2\n"
        "    total = sum(v for v in [1.0, 2.0]) + len({k: k for k in range(3)})\n"
        "    return f(agent_pos[:, 0]) * total * y, {}\n"
    )
    program = validate_program(source, ["agent_pos"])
    reward, _ = program.compile_function()(np.ones((2, 2)))
    np.testing.assert_allclose(reward, [12.0, 12.0])


# -- rejections -------------------------------------------------------------------------------

ENTRY = "def compute_reward(agent_pos, goal_pos):\n"
RETURN = "    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}\n"

REJECTIONS = {
    "import": (ENTRY + "    import os\n" + RETURN, "import"),
    "import-from": ("from os import system\n" + ENTRY + RETURN, "import"),
    "class": ("class A:\n    pass\n" + ENTRY + RETURN, "forbidden_syntax"),
    "global": (ENTRY + "    global g\n" + RETURN, "forbidden_syntax"),
    "nonlocal": (
        ENTRY + "    def inner():\n        nonlocal agent_pos\n" + RETURN,
        "forbidden_syntax",
    ),
    "with": (
        ENTRY + "    with np.errstate(all='ignore'):\n        pass\n" + RETURN,
        "forbidden_syntax",
    ),
    "try": (
        ENTRY + "    try:\n        pass\n    except ValueError:\n        pass\n" + RETURN,
        "forbidden_syntax",
    ),
    "async": ("async " + ENTRY + RETURN, "forbidden_syntax"),
    "yield": (ENTRY + "    yield 1\n", "forbidden_syntax"),
    "del": (ENTRY + "    d = 1\n    del d\n" + RETURN, "forbidden_syntax"),
    "decorator": ("def wrap(f):\n    return f\n@wrap\n" + ENTRY + RETURN, "forbidden_syntax"),
    "non-literal-default": (
        "def h(x=np.zeros(3)):\n    return x\n" + ENTRY + RETURN,
        "forbidden_syntax",
    ),
    "attribute-store": (ENTRY + "    agent_pos.shape = (1,)\n" + RETURN, "forbidden_syntax"),
    "dunder-attribute": (ENTRY + "    c = agent_pos.__class__\n" + RETURN, "dunder"),
    "dunder-name": (ENTRY + "    b = __builtins__\n" + RETURN, "dunder"),
    "private-attribute": (ENTRY + "    f = np._core\n" + RETURN, "private"),
    "private-function": ("def _helper():\n    return 1\n" + ENTRY + RETURN, "private"),
    "eval": (ENTRY + "    eval('1')\n" + RETURN, "forbidden_name"),
    "getattr": (ENTRY + "    getattr(np, 'load')\n" + RETURN, "forbidden_name"),
    "vars": (ENTRY + "    vars()\n" + RETURN, "forbidden_name"),
    "np-redefined": (ENTRY + "    np = 1\n" + RETURN, "forbidden_name"),
    "np-as-value": (ENTRY + "    m = math\n" + RETURN, "forbidden_name"),
    "np-linalg-as-value": (ENTRY + "    la = np.linalg\n" + RETURN, "forbidden_name"),
    "np-not-allowed": (ENTRY + "    np.vectorize(abs)\n" + RETURN, "forbidden_attribute"),
    "np-empty": (ENTRY + "    np.empty(3)\n" + RETURN, "forbidden_attribute"),
    "np-ndarray-call": (ENTRY + "    np.ndarray((3,))\n" + RETURN, "forbidden_attribute"),
    "np-seterr": (ENTRY + "    np.seterr(all='raise')\n" + RETURN, "forbidden_attribute"),
    "np-linalg-not-allowed": (
        ENTRY + "    np.linalg.eig(agent_pos)\n" + RETURN,
        "forbidden_attribute",
    ),
    "math-not-allowed": (ENTRY + "    math.factorial(10**6)\n" + RETURN, "forbidden_attribute"),
    "ctypes-attribute": (ENTRY + "    p = agent_pos.ctypes\n" + RETURN, "forbidden_attribute"),
    "frame-attribute": (ENTRY + "    f = agent_pos.f_globals\n" + RETURN, "forbidden_attribute"),
    "unknown-name": (ENTRY + "    x = undefined_thing + 1\n" + RETURN, "unknown_name"),
    "huge-string": (ENTRY + f"    s = '{'x' * 1001}'\n" + RETURN, "constant"),
    "huge-int": (ENTRY + f"    n = {10**19}\n" + RETURN, "constant"),
    "power-bomb": (ENTRY + "    n = 9 ** 99999\n" + RETURN, "constant"),
    "shift-bomb": (ENTRY + "    n = 1 << 10**8\n" + RETURN, "constant"),
    "module-assignment": ("SCALE = 2.0\n" + ENTRY + RETURN, "module_level"),
    "module-if": ("if True:\n    pass\n" + ENTRY + RETURN, "module_level"),
    "no-entry": ("def reward(agent_pos):\n    return agent_pos, {}\n", "no_entry"),
    "duplicate-entry": (ENTRY + RETURN + ENTRY + RETURN, "duplicate_entry"),
    "varargs": ("def compute_reward(*args):\n    return args[0], {}\n", "bad_signature"),
    "kwargs": ("def compute_reward(agent_pos, **kw):\n    return agent_pos, {}\n", "bad_signature"),
    "default": ("def compute_reward(agent_pos=1):\n    return agent_pos, {}\n", "bad_signature"),
    "keyword-only": (
        "def compute_reward(*, agent_pos):\n    return agent_pos, {}\n",
        "bad_signature",
    ),
    "no-parameters": ("def compute_reward():\n    return 0, {}\n", "bad_signature"),
    "unknown-variable": (
        "def compute_reward(api_key):\n    return api_key, {}\n",
        "unknown_variable",
    ),
    "syntax": (ENTRY + "    return (\n", "syntax"),
    "null-byte": (ENTRY + "    x = 1\0\n" + RETURN, "syntax"),
    # Attributes: an allow-list on every value, attributes of attributes included.
    "resize": (ENTRY + "    agent_pos.resize(4)\n" + RETURN, "forbidden_attribute"),
    "item": (ENTRY + "    x = agent_pos.item(0)\n" + RETURN, "forbidden_attribute"),
    "tolist": (ENTRY + "    x = agent_pos.tolist()\n" + RETURN, "forbidden_attribute"),
    "view": (ENTRY + "    x = agent_pos.view(np.int8)\n" + RETURN, "forbidden_attribute"),
    "fill": (ENTRY + "    agent_pos.fill(0)\n" + RETURN, "forbidden_attribute"),
    "base-of-allowed": (ENTRY + "    x = agent_pos.T.base\n" + RETURN, "forbidden_attribute"),
    "dtype-attribute": (ENTRY + "    k = agent_pos.dtype.kind\n" + RETURN, "forbidden_attribute"),
    "clock": (ENTRY + "    t = agent_pos.now()\n" + RETURN, "forbidden_attribute"),
    "unknown-method": (ENTRY + "    x = {}.fromkeys('ab')\n" + RETURN, "forbidden_attribute"),
    "scalar-type-method": (
        ENTRY + "    x = np.float64.astype(np.float64(1), np.float32)\n" + RETURN,
        "forbidden_attribute",
    ),
    "np-dtype": (ENTRY + "    d = np.dtype('f8')\n" + RETURN, "forbidden_attribute"),
    "np-datetime64": (ENTRY + "    t = np.datetime64('now')\n" + RETURN, "forbidden_attribute"),
    "np-function-as-value": (ENTRY + "    f = np.zeros\n" + RETURN, "forbidden_attribute"),
    "dtype-method-as-value": (
        ENTRY + "    f = list(map(agent_pos.astype, ['O']))\n" + RETURN,
        "forbidden_attribute",
    ),
    # dtypes: bool, integer and float, written literally, wherever a dtype goes.
    "dtype-object": (ENTRY + "    x = np.zeros(3, dtype=object)\n" + RETURN, "forbidden_dtype"),
    "dtype-object-code": (ENTRY + "    x = np.ones(3, 'O')\n" + RETURN, "forbidden_dtype"),
    "dtype-datetime": (ENTRY + "    x = np.zeros(3, dtype='M8[s]')\n" + RETURN, "forbidden_dtype"),
    "dtype-timedelta": (ENTRY + "    x = agent_pos.astype('m8')\n" + RETURN, "forbidden_dtype"),
    "dtype-string": (ENTRY + "    x = agent_pos.astype('U10')\n" + RETURN, "forbidden_dtype"),
    "dtype-str": (ENTRY + "    x = agent_pos.astype(str)\n" + RETURN, "forbidden_dtype"),
    "dtype-bytes": (ENTRY + "    x = np.array([1], dtype='S3')\n" + RETURN, "forbidden_dtype"),
    "dtype-void": (ENTRY + "    x = np.zeros(3, 'V8')\n" + RETURN, "forbidden_dtype"),
    "dtype-complex": (ENTRY + "    x = np.zeros(3, 'complex128')\n" + RETURN, "forbidden_dtype"),
    "dtype-longdouble": (ENTRY + "    x = np.zeros(3, 'float128')\n" + RETURN, "forbidden_dtype"),
    "dtype-big-endian": (ENTRY + "    x = np.zeros(3, '>f8')\n" + RETURN, "forbidden_dtype"),
    "dtype-subarray": (ENTRY + "    x = np.zeros(3, '(2,)f8')\n" + RETURN, "forbidden_dtype"),
    "dtype-structured": (
        ENTRY + "    x = np.zeros(3, dtype=[('a', 'f8')])\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-unknown-string": (
        ENTRY + "    x = np.zeros(3, 'nonsense')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-bytes-literal": (ENTRY + "    x = np.zeros(3, b'f8')\n" + RETURN, "forbidden_dtype"),
    "dtype-of-a-value": (
        ENTRY + "    x = np.zeros(3, dtype=agent_pos.dtype)\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-variable": (
        ENTRY + "    d = 'f8'\n    x = agent_pos.astype(d)\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-full-positional": (ENTRY + "    x = np.full(3, 0, 'O')\n" + RETURN, "forbidden_dtype"),
    "dtype-arange-positional": (
        ENTRY + "    x = np.arange(0, 3, 1, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-linspace-positional": (
        ENTRY + "    x = np.linspace(0, 1, 3, True, False, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-eye-positional": (ENTRY + "    x = np.eye(2, 2, 0, 'O')\n" + RETURN, "forbidden_dtype"),
    "dtype-np-sum-positional": (
        ENTRY + "    x = np.sum(agent_pos, 0, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-method-positional": (
        ENTRY + "    x = agent_pos.cumsum(0, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-ufunc-reduce-positional": (
        ENTRY + "    x = np.add.reduce(agent_pos, 0, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-ufunc-keyword": (
        ENTRY + "    x = np.add(agent_pos, goal_pos, dtype=object)\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-unbound-through-a-name": (
        ENTRY + "    t = np.float64\n    x = t.sum(t(1), None, 'O')\n" + RETURN,
        "forbidden_dtype",
    ),
    "dtype-builtin-rebound": (ENTRY + "    float = 'O'\n" + RETURN, "forbidden_name"),
    "dtype-builtin-as-parameter": (
        ENTRY + "    f = lambda int: int\n" + RETURN,
        "forbidden_name",
    ),
    "dtype-builtin-as-function": (
        "def bool(x):\n    return x\n" + ENTRY + RETURN,
        "forbidden_name",
    ),
    # Arguments that switch checks off or hide a dtype.
    "refcheck": (
        ENTRY + "    x = np.copy(agent_pos, refcheck=False)\n" + RETURN,
        "forbidden_argument",
    ),
    "buffer": (
        ENTRY + "    x = np.asarray(agent_pos, buffer=goal_pos)\n" + RETURN,
        "forbidden_argument",
    ),
    "strides": (
        ENTRY + "    x = np.copy(agent_pos, strides=(0,))\n" + RETURN,
        "forbidden_argument",
    ),
    "offset": (ENTRY + "    x = np.asarray(agent_pos, offset=-8)\n" + RETURN, "forbidden_argument"),
    "signature": (
        ENTRY + "    x = np.exp(agent_pos, signature='O->O')\n" + RETURN,
        "forbidden_argument",
    ),
    "where-without-out": (
        ENTRY + "    x = np.divide(1.0, agent_pos, where=agent_pos != 0)\n" + RETURN,
        "forbidden_argument",
    ),
    "where-with-out-none": (
        ENTRY + "    x = np.add(agent_pos, 1, out=(None,), where=agent_pos > 9)[0]\n" + RETURN,
        "forbidden_argument",
    ),
    "where-with-out-variable": (
        ENTRY + "    o = None\n    x = np.add(agent_pos, 1, out=o, where=agent_pos > 9)\n" + RETURN,
        "forbidden_argument",
    ),
    "where-without-out-method": (
        ENTRY + "    x = agent_pos.clip(0, 1, where=agent_pos > 0)\n" + RETURN,
        "forbidden_argument",
    ),
    "kwargs-splat": (ENTRY + "    x = np.exp(agent_pos, **{})\n" + RETURN, "forbidden_argument"),
    "starred-dtype-call": (ENTRY + "    x = np.zeros(*[3])\n" + RETURN, "forbidden_argument"),
    "starred-astype": (
        ENTRY + "    x = agent_pos.astype(*['f8'])\n" + RETURN,
        "forbidden_argument",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejections_have_the_right_reason(case: str) -> None:
    source, reason = REJECTIONS[case]
    error = rejected(source)
    assert error.reason == reason, error.message
    assert isinstance(error, ValueError)


def test_messages_name_lines_and_fixes() -> None:
    error = rejected("def compute_reward(agent_pos, api_key):\n    return agent_pos, {}\n")
    assert error.line == 1
    assert error.message.startswith("line 1: compute_reward parameter `api_key` is not a state")
    for name in VARIABLES:
        assert name in error.message  # the valid names, for the LLM to pick from
    assert "block_pos (3,)" in error.message

    error = rejected(ENTRY + "    x = 1\n    y = np.load('f')\n" + RETURN)
    assert error.line == 3 and error.message.startswith("line 3: np.load is not available")
    assert "reads or writes files" in error.message

    error = rejected(ENTRY + "    np.random.seed(0)\n" + RETURN)
    assert "deterministic" in error.message

    error = rejected(ENTRY + "    print(agent_pos)\n" + RETURN)
    assert "return it as a component" in error.message


def test_every_problem_is_listed_in_source_order() -> None:
    source = "import os\n" + ENTRY + "    eval('1')\n    np.lib.format.open_memmap('x')\n" + RETURN
    error = rejected(source)
    assert error.reason == "import"
    lines = error.message.splitlines()
    assert lines[0].startswith("line 1: imports are not allowed")
    assert lines[1].startswith("line 3: `eval` is not allowed")
    # At one position the innermost attribute comes first: np.lib, then .format.
    assert lines[2].startswith("line 4: np.lib is not available")


def test_size_limits() -> None:
    long_source = ENTRY + "    x = 0\n" * 3000 + RETURN
    assert rejected(long_source).reason == "too_large"
    assert validate_program(long_source, VARIABLES, max_chars=10**6, max_nodes=10**5)
    many_nodes = ENTRY + "    x = [" + "1, " * 200 + "]\n" + RETURN
    assert validate_program(many_nodes, VARIABLES)
    error = rejected_with(many_nodes, max_nodes=100)
    assert error.reason == "too_large" and "syntax nodes" in error.message


def test_nesting_limits() -> None:
    deep = ENTRY + "    x = " + "abs(" * 25 + "1" + ")" * 25 + "\n" + RETURN
    assert validate_program(deep, VARIABLES, max_depth=40)
    assert rejected_with(deep, max_depth=20).reason == "nesting"
    long_chain = ENTRY + "    x = " + " + ".join(["1"] * 40) + "\n" + RETURN
    assert rejected(long_chain).reason == "nesting"
    # Too deep for the parser itself: a clean rejection, never a crash.
    assert rejected(ENTRY + "    x = " + "-" * 15000 + "1\n" + RETURN).reason == "nesting"


def rejected_with(source: str, **limits: int) -> ProgramRejected:
    with pytest.raises(ProgramRejected) as info:
        validate_program(source, VARIABLES, **limits)  # type: ignore[arg-type]
    return info.value


def test_variables_must_be_names() -> None:
    with pytest.raises(TypeError, match="collection of names"):
        validate_program(GRIDWORLD, "agent_pos")
    with pytest.raises(ValueError, match="identifiers"):
        validate_program(GRIDWORLD, ["agent pos"])
    with pytest.raises(ValueError, match="tuple of sizes"):
        validate_program(GRIDWORLD, {"agent_pos": (2.5,), "goal_pos": (2,)})


def test_direct_construction_checks_shapes_and_hashes() -> None:
    program = ValidatedProgram("x", ("a", "b"))
    assert program.parameter_shapes == (None, None)
    assert program.sha256 == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ValueError, match="parameter shapes"):
        ValidatedProgram("x", ("a", "b"), ((2,),))


def test_np_ndarray_in_annotations_is_allowed() -> None:
    source = (
        "def compute_reward(agent_pos: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:\n"
        "    return agent_pos.sum(axis=-1) * 1.0, {}\n"
    )
    assert validate_program(source, {"agent_pos": (2,)}).parameters == ("agent_pos",)


# -- attributes, dtypes and keywords: what stays allowed ---------------------------------------

# What honest programs write, all in one: numpy's shape helpers and np.select, literal dtypes
# in every spelling and place, dict/list/str methods for components, ufunc reduce, comparing
# a dtype, isinstance on numpy's scalar types.
IDIOMS = """
def compute_reward(agent_pos, goal_pos):
    n = np.shape(agent_pos)[0]
    assert np.size(agent_pos) == 2 * n and np.ndim(agent_pos) == 2
    diff = (agent_pos - goal_pos).astype(float)
    dist = np.abs(diff).sum(axis=-1, dtype=np.float64)
    tier = np.select([dist == 0, dist < 3], [2.0, 1.0], default=0.0)
    near = (dist < 3).astype("float32").astype(np.float64)
    steps = np.zeros(n, dtype=np.float32) + np.ones(n, np.int64) + np.full(n, 0.5, "f8")
    grid = np.arange(0, 4, 1, np.int64).reshape(2, 2).T.copy()
    mask = np.zeros_like(dist, dtype=bool) | (dist > 100)
    worst = np.maximum.reduce([dist, tier, near])
    inverse = np.divide(1.0, dist, out=np.zeros_like(dist), where=dist != 0)
    positive = dist.sum(where=dist > 0) + np.mean(dist, where=dist >= 0)
    parts = {"tier": tier, "near": near, "steps": steps.astype(np.float64)}
    names = []
    for key, value in sorted(parts.items()):
        names.append(key.upper())
    label = ",".join(names).lower()
    scale = 1.0 if diff.dtype == np.float64 and isinstance(dist[0], np.floating) else 0.0
    total = scale * (tier + near) + 0.0 * (worst + inverse + positive) + float(grid[1, 0]) * mask
    assert label.startswith("near") and len(parts.keys()) == len(list(parts.values()))
    return total, parts
"""


def test_attributes_of_a_rejected_numpy_name_are_not_reported_again() -> None:
    source = ENTRY + "    x = np.random.rand(3) + np.lib.format.header(1)\n" + RETURN
    with pytest.raises(ProgramRejected) as rejected:
        validate_program(source, VARIABLES)
    lines = rejected.value.message.splitlines()
    assert len(lines) == 2
    assert "np.random is not available" in lines[0] and "np.lib is not available" in lines[1]


def test_common_idioms_validate_and_run() -> None:
    program = validate_program(IDIOMS, VARIABLES)
    reward, components = program.compile_function()(
        np.array([[0, 0], [4, 4], [1, 0]]), np.zeros((3, 2), dtype=np.int64)
    )
    np.testing.assert_allclose(reward, [3.0, 0.0, 2.0])
    np.testing.assert_allclose(components["steps"], [1.5, 1.5, 1.5])
    assert components["steps"].dtype == np.float64


@pytest.mark.parametrize(
    "line",
    [
        "s = np.shape(agent_pos)",
        "s = np.size(agent_pos) + np.ndim(agent_pos)",
        "y = np.select([agent_pos > 1], [agent_pos], 0)",
        "z = np.zeros(3, dtype=np.float32)",
        "z = np.zeros(3, np.float32)",
        "z = np.array([1, 2], dtype=None)",
        "a = agent_pos.astype(float)",
        "a = agent_pos.astype('float32')",
        "a = agent_pos.astype('f8') + agent_pos.astype('int32') + agent_pos.astype('?')",
        "a = agent_pos.astype(np.bool_) | agent_pos.astype(bool)",
        "a = agent_pos.astype(np.uint8, copy=False)",
        "e = np.eye(2, dtype=int)",
        "m = agent_pos.mean(0, np.float64) + np.add.reduce(agent_pos, 0, np.float64)",
        "same = agent_pos.dtype == np.float64",
        "pairs = [(k, v) for k, v in {'a': 1}.items()]",
        "t = agent_pos.transpose(*[1, 0])",
        "f = np.exp",
    ],
)
def test_allowed_attributes_and_dtypes(line: str) -> None:
    assert validate_program(ENTRY + f"    {line}\n" + RETURN, VARIABLES)


def test_dtype_slots_match_numpy() -> None:
    # Where numpy's signature takes a dtype positionally, the validator knows the place ...
    for name in sorted(NUMPY_ALLOWED):
        function = getattr(np, name)
        if isinstance(function, type) or not callable(function):
            continue
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # C functions without a signature on older numpy
            continue
        positional = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if "dtype" in positional:
            assert _NUMPY_DTYPE_SLOTS.get(name) == positional.index("dtype"), name
    # ... and each place it knows is where numpy reads the dtype.
    before = {
        "array": ([1],),
        "asarray": ([1],),
        "zeros": (2,),
        "ones": (2,),
        "zeros_like": (np.ones(2),),
        "ones_like": (np.ones(2),),
        "identity": (2,),
        "full": (2, 1),
        "full_like": (np.ones(2), 1),
        "arange": (0, 2, 1),
        "eye": (2, 2, 0),
        "linspace": (0, 1, 3, True, False),
        **{r: (np.ones((2, 2)), 0) for r in ("sum", "prod", "mean", "std", "var", "cumsum")},
        **{r: (np.ones((2, 2)), 0) for r in ("cumprod", "nansum", "nanmean")},
    }
    assert set(before) == set(_NUMPY_DTYPE_SLOTS)
    for name, args in before.items():
        assert len(args) == _NUMPY_DTYPE_SLOTS[name]
        assert np.asarray(getattr(np, name)(*args, np.float32)).dtype == np.float32, name
    for name, slot in _METHOD_DTYPE_SLOTS.items():
        owner = np.add if name in ("reduce", "accumulate") else np.ones((2, 2))
        args = [np.ones((2, 2))] if owner is np.add else []
        args += [0] * (slot - len(args))
        assert getattr(owner, name)(*args, np.float32).dtype == np.float32, name
    # Every allowed method of arrays and ufuncs that takes a dtype is in the table.
    for name in ALLOWED_ATTRIBUTES:
        for owner in (np.ndarray, np.ufunc):
            method = getattr(owner, name, None)
            if callable(method) and method.__doc__:
                first = method.__doc__.strip().splitlines()[0]
                params = [p.split("=")[0].strip() for p in first.split("(", 1)[1].split(",")]
                if "dtype" in params:
                    assert _METHOD_DTYPE_SLOTS[name] == params.index("dtype"), name


def test_attribute_and_dtype_lists_are_what_they_say() -> None:
    reachable = (np.ndarray, np.ufunc, dict, list, set, str)
    assert all(any(hasattr(t, name) for t in reachable) for name in ALLOWED_ATTRIBUTES)
    for dangerous in (
        "resize", "item", "tolist", "view", "ctypes", "data", "base", "setflags", "fill",
        "put", "itemset", "byteswap", "newbyteorder", "tofile", "dump", "getfield",
        "setfield", "strides", "flags", "flat", "tobytes", "now", "format", "type",
        "fields", "real", "imag",
    ):  # fmt: skip
        assert dangerous not in ALLOWED_ATTRIBUTES
    for name in _NUMPY_DTYPES:
        dtype = np.dtype(getattr(np, name))
        assert dtype.kind in "biuf" and dtype.itemsize <= 8
        assert name in NUMPY_ALLOWED
    assert {"refcheck", "buffer", "strides", "offset"} <= set(UNSAFE_KEYWORDS)
    assert {"shape", "size", "ndim", "select"} <= NUMPY_ALLOWED


def test_attribute_messages_say_what_to_write_instead() -> None:
    cases = {
        "x = agent_pos.item()": "x[0]",
        "x = agent_pos.tolist()": "keep numpy arrays",
        "agent_pos.fill(0)": "np.full_like",
        "x = agent_pos.view(np.int8)": "astype",
        "x = agent_pos.searchsorted(1)": "np.searchsorted(x, ...)",
        "k = agent_pos.dtype.kind": "x.dtype == np.float32",
        "x = np.zeros(3, dtype=agent_pos.dtype)": "np.zeros_like",
        "x = agent_pos.unknown_thing": ".astype .clip",
    }
    for line, hint in cases.items():
        error = rejected(ENTRY + "    x = 1\n" + f"    {line}\n" + RETURN)
        assert error.line == 3, error.message
        assert error.message.startswith("line 3: "), error.message
        assert hint in error.message, error.message


def test_every_part_of_a_raw_memory_attack_is_named() -> None:
    source = (
        ENTRY
        + "    spy = np.ndarray((8,), np.int64, buffer=agent_pos, offset=8, strides=(0,))\n"
        + RETURN
    )
    message = rejected(source).message
    for part in ("np.ndarray", "`buffer=`", "`offset=`", "`strides=`"):
        assert part in message


def test_a_rejection_survives_pickling_across_process_pools() -> None:
    import pickle

    from rewardlab.sandbox.validation import ProgramRejected

    err = pickle.loads(pickle.dumps(ProgramRejected("syntax", "line 3: invalid syntax", 3)))
    assert (err.reason, err.message, err.line, str(err)) == (
        "syntax",
        "line 3: invalid syntax",
        3,
        "line 3: invalid syntax",
    )
