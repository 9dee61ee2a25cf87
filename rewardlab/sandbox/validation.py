"""LLM-written reward programs (Eureka-style): extraction and static validation.

The **reward program contract**: Python source defining exactly one public function
``compute_reward(<params>)`` (helper functions with other names are fine), where every
parameter is the name of a declared state variable. It receives batched numpy arrays (leading
batch dimension ``B``: ``block_pos`` is ``(B, 3)``, a scalar variable is ``(B,)``) and returns
``(reward, components)``: ``reward`` an array ``(B,)`` and ``components`` a dict
``{name: array (B,)}``. The names ``np`` (numpy) and ``math`` are provided; nothing may be
imported.

:func:`validate_program` checks the source against an allow-list **without running it**. It
is the first line of defence and the source of readable feedback for the LLM, not the
security boundary: the process running the program is
(:mod:`rewardlab.sandbox.process`). Decisions the allow-list makes:

- Top level: only ``def`` statements (no decorators; helper defaults must be literals) and a
  docstring, so loading a program runs nothing.
- Allowed: assignments, ``if``/``for``/``while``, ``return``, ``raise``, ``assert``,
  comprehensions and generator expressions, ``lambda`` (its body is an expression checked like
  any other), f-strings, nested helper functions.
- Rejected: ``import``, ``class``, ``global``/``nonlocal``, ``with``, ``try`` (a program must
  not hide its own errors: they are reported back to the LLM), ``async``/``await``,
  ``yield``, ``del``, ``match``, assigning to attributes.
- Names: no name or attribute starting with ``_`` (``__class__``, ``__globals__``,
  ``__builtins__``, ``_private``); no introspection or I/O builtins (:data:`FORBIDDEN_NAMES`);
  every name read must be a parameter, a name the program binds, ``np``, ``math`` or one of
  :data:`SAFE_BUILTINS`.
- ``np`` and ``math`` may only be used as ``np.<name>``/``math.<name>`` with ``<name>`` in
  :data:`NUMPY_ALLOWED` (``np.linalg.<name>`` in :data:`NUMPY_LINALG_ALLOWED`) or
  :data:`MATH_ALLOWED`. Left out on purpose: file I/O (``np.load``, ``np.save*``,
  ``np.fromfile``, ``np.memmap``), escape hatches (``np.ctypeslib``, ``np.lib``,
  ``np.f2py``, ``np.testing``), ``np.random`` (a reward must be a deterministic function of
  the state), global state (``np.seterr``, ``np.set_printoptions``), per-element Python
  (``np.vectorize``, ``np.frompyfunc``) and uninitialised memory (``np.empty``,
  ``np.ndarray(shape)``).
- Attributes of every other value are an allow-list too (:data:`ALLOWED_ATTRIBUTES`: array
  data and methods that compute new arrays, ufunc ``.reduce``, dict/list/str methods); the
  rest (``.resize``, ``.view``, ``.item``, ``.tolist``, ``.ctypes``, ``.data``, ``.base``,
  ``.format``, frame attributes, ...) reach raw memory, files, the clock or interpreter
  internals, or give values no dtype check sees. A dtype's own attributes are not listed.
- dtypes are bool, integer or float (at most 64 bits), named literally wherever a dtype is
  passed (``dtype=``, ``.astype(...)``, and the positional dtype of ``np.zeros``, ``np.sum``,
  ``x.sum``, ...): ``np.float64``, ``float``, ``"float32"``. Object, datetime, string,
  complex and structured dtypes, ``np.dtype`` and dtypes chosen at run time are rejected;
  so are the names that take a dtype used as values (``f = np.zeros``), ``**mapping``
  arguments and ``*args`` where a dtype could hide. ``bool``, ``int`` and ``float`` cannot
  be rebound.
- Keyword arguments that switch off numpy's own safety checks or pick a ufunc's dtypes are
  rejected in every call (:data:`UNSAFE_KEYWORDS`: ``refcheck``, ``buffer``, ``offset``,
  ``strides``, ``signature``, ...), and so is ``where=`` outside a reduction unless ``out=``
  is a new filled array (``np.zeros_like(x)``, ...): an elementwise ufunc otherwise leaves
  the masked-off entries uninitialised.
- Size: at most ``max_chars`` characters, ``max_nodes`` AST nodes, ``max_depth`` levels of
  nesting, string constants of ``max_string`` characters, integer literals below ``1e18``,
  and no constant power or shift whose result would have more than 10,000 digits
  (``10**10**10``).

:func:`extract_code` takes the program out of an LLM response in time linear in its length,
refusing responses longer than ``max_chars`` before reading them.

Rejections raise :class:`ProgramRejected` with a machine-readable ``reason``: ``"no_code"``,
``"syntax"``, ``"too_large"``, ``"nesting"``, ``"import"``, ``"module_level"``,
``"forbidden_syntax"``, ``"dunder"``, ``"private"``, ``"forbidden_name"``,
``"forbidden_attribute"``, ``"forbidden_dtype"``, ``"forbidden_argument"``,
``"unknown_name"``, ``"constant"``, ``"no_entry"``, ``"duplicate_entry"``,
``"bad_signature"``, ``"unknown_variable"``.
"""

from __future__ import annotations

import ast
import hashlib
import math
import re
import textwrap
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.sandbox.worker import SAFE_BUILTINS, compile_reward_function

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "FORBIDDEN_NAMES",
    "MATH_ALLOWED",
    "MAX_RESPONSE_CHARS",
    "NUMPY_ALLOWED",
    "NUMPY_LINALG_ALLOWED",
    "SAFE_BUILTINS",
    "UNSAFE_KEYWORDS",
    "ProgramRejected",
    "ValidatedProgram",
    "extract_code",
    "validate_program",
]

ENTRY = "compute_reward"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: ``np.<name>`` a program may use: elementwise math, comparisons, reductions, array
#: construction and reshaping, constants, bool/integer/float dtypes.
NUMPY_ALLOWED = _words(
    """
    abs absolute fabs sign sqrt cbrt square exp exp2 expm1 log log2 log10 log1p sin cos tan
    arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh hypot deg2rad rad2deg
    degrees radians floor ceil round rint trunc fix mod fmod remainder power float_power
    maximum minimum fmax fmin clip where select add subtract multiply divide true_divide
    floor_divide negative positive reciprocal isnan isinf isfinite nan_to_num logical_and
    logical_or logical_not logical_xor greater greater_equal less less_equal equal not_equal
    heaviside sinc interp copysign signbit
    sum prod mean std var min max amin amax argmin argmax any all cumsum cumprod median average
    nansum nanmean nanmax nanmin count_nonzero ptp diff dot matmul einsum inner outer cross
    array asarray zeros ones full zeros_like ones_like full_like arange linspace eye identity
    stack vstack hstack concatenate column_stack expand_dims squeeze reshape broadcast_to tile
    repeat transpose swapaxes moveaxis atleast_1d atleast_2d copy take take_along_axis sort
    argsort isclose allclose array_equal nonzero searchsorted digitize unique meshgrid roll flip
    shape size ndim
    pi e inf nan newaxis euler_gamma
    float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ integer
    floating number
    linalg
    """
)
#: ``np.linalg.<name>`` a program may use.
NUMPY_LINALG_ALLOWED = frozenset({"norm", "det", "inv", "solve", "pinv"})
#: ``math.<name>`` a program may use.
MATH_ALLOWED = _words(
    """
    pi e tau inf nan sqrt exp log log2 log10 log1p expm1 sin cos tan asin acos atan atan2 sinh
    cosh tanh asinh acosh atanh hypot fabs floor ceil trunc isfinite isnan isinf isclose pow
    copysign degrees radians fmod erf erfc dist prod fsum
    """
)

#: Attributes and methods a program may use on any value other than ``np`` and ``math``.
#: Validation cannot know a value's type, so each name must be memory-safe and act only on
#: the program's own values for every type a program can reach that has it (arrays, numpy
#: scalars and their types, ufuncs, dicts, lists, tuples, sets, strings, functions). None of
#: a dtype's own attributes (``.type``, ``.fields``, ``.base``, ...) is here: a ``.dtype``
#: can be compared, not taken apart.
ALLOWED_ATTRIBUTES = _words(
    # Array data, read only: plain integers, tuples and the dtype.
    """
    shape ndim size dtype T
    """
    # Array methods that compute new arrays from the old (bounds-checked; their dtype
    # arguments are checked like every other dtype) and ndarray.sort/list.sort, in place on
    # the program's own memory.
    """
    astype reshape ravel flatten squeeze transpose swapaxes copy clip round sum prod mean std
    var min max argmin argmax argsort sort cumsum cumprod any all nonzero dot take repeat
    """
    # ufunc methods: np.maximum.reduce([a, b, c]), np.subtract.outer(a, b).
    """
    reduce accumulate outer
    """
    # dicts (components), lists and sets the program builds.
    """
    items keys values get update setdefault pop append extend insert index count reverse add
    """
    # Strings, for component names.
    """
    join startswith endswith lower upper replace split strip
    """
)

#: Where a dtype goes in the positional arguments of ``np.<name>`` (from numpy's signatures;
#: elsewhere it is keyword-only). A dtype there must be a literal numeric one, and the
#: function must be called where it is named: passed around as a value, the checks would not
#: see its arguments.
_NUMPY_DTYPE_SLOTS: Mapping[str, int] = {
    **dict.fromkeys(("array", "asarray", "zeros", "ones", "zeros_like", "ones_like",
                     "identity"), 1),
    **dict.fromkeys(("full", "full_like", "sum", "prod", "mean", "std", "var", "cumsum",
                     "cumprod", "nansum", "nanmean"), 2),
    "arange": 3,
    "eye": 3,
    "linspace": 5,
}  # fmt: skip
#: The same for methods (``x.astype(dtype)``, ``x.sum(axis, dtype)``,
#: ``np.add.reduce(x, axis, dtype)``). Called through the class
#: (``np.float64.astype(x, dtype)``) the arguments move one place right, so both places are
#: checked.
_METHOD_DTYPE_SLOTS: Mapping[str, int] = {
    "astype": 0,
    **dict.fromkeys(("sum", "prod", "mean", "std", "var", "cumsum", "cumprod"), 1),
    **dict.fromkeys(("reduce", "accumulate"), 2),
}
#: ``np.<name>`` accepted as a dtype argument, besides ``bool``, ``int``, ``float``, ``None``
#: and strings that name one of these dtypes (``"float32"``, ``"f8"``).
_NUMPY_DTYPES = _words(
    "bool_ float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64"
)
_BUILTIN_DTYPES = ("bool", "int", "float")
# Names a program may read but not bind: the dtype checks trust the builtin dtypes, and the
# worker routes every use of str through a check (worker._GuardText).
_UNBINDABLE = {
    **{name: f"programs use it as a dtype (x.astype({name}))" for name in _BUILTIN_DTYPES},
    "str": "use another name",
}
#: ``np.<name>`` that are numpy's scalar types (for ``isinstance`` and conversions).
_NUMPY_TYPES = _NUMPY_DTYPES | {"integer", "floating", "number"}

#: Keyword arguments rejected in every call, with the reason given to the LLM.
UNSAFE_KEYWORDS: Mapping[str, str] = {
    "refcheck": "it lets ndarray.resize free memory that other arrays still use",
    **dict.fromkeys(("buffer", "offset", "strides"),
                    "it places an array on raw memory, outside numpy's bounds checks"),
    **dict.fromkeys(("signature", "sig"),
                    "it picks the dtypes a ufunc computes in, object and datetime included"),
    "extobj": "it changes numpy's error handling",
}  # fmt: skip

# Calls that may take ``where=`` without ``out=``: reductions, whose result starts from their
# identity (or ``initial``). An elementwise ufunc (np.add, np.divide, np.clip, ufunc.outer)
# given ``where=`` but no ``out=`` returns a new array whose masked-off entries are never
# written: whatever the allocator last held there, i.e. earlier calls' values (state kept
# across calls) and heap addresses (per-process entropy).
_WHERE_REDUCTIONS = _words(
    """
    sum prod mean std var min max amin amax any all nansum nanmean nanmax nanmin nanprod
    nanstd nanvar count_nonzero average reduce
    """
)

_NUMPY_WHY = {
    **dict.fromkeys(
        ("load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt",
         "fromfile", "memmap", "fromregex"),
        "it reads or writes files",
    ),
    **dict.fromkeys(("ctypeslib", "lib", "f2py", "distutils", "testing", "os", "sys"),
                    "it reaches outside numpy's math"),
    "random": "a reward must be a deterministic function of the state",
    **dict.fromkeys(("seterr", "seterrcall", "set_printoptions", "setbufsize"),
                    "it changes numpy's global state"),
    **dict.fromkeys(("vectorize", "frompyfunc"),
                    "it runs a Python function per element; write vectorized numpy instead"),
    **dict.fromkeys(("empty", "empty_like"), "uninitialised memory makes rewards random"),
    "ndarray": "np.ndarray(shape) is uninitialised memory, which makes rewards random "
               "(in annotations it is fine)",
    **dict.fromkeys(("frombuffer", "from_dlpack", "byte_bounds", "shares_memory",
                     "may_share_memory"), "it reaches raw memory"),
    **dict.fromkeys(("dtype", "datetime64", "timedelta64", "object_", "str_", "bytes_",
                     "void", "record", "recarray", "datetime_data", "complex64",
                     "complex128", "complexfloating", "generic"),
                    "only bool, integer and float dtypes are available, named directly "
                    "(np.float64, np.int64, bool, \"float32\")"),
}  # fmt: skip

# Why an attribute is not on ALLOWED_ATTRIBUTES, and what to write instead, where that is
# worth saying; the message names the allowed ones anyway.
_RAW_MEMORY = "it exposes or reinterprets raw memory"
_ATTRIBUTE_WHY = {
    "item": "index the array instead (x[0], x[i, j]), or float(x[i])",
    "tolist": "keep numpy arrays (index them, np.stack or np.concatenate them); list(x) "
              "gives a list of the elements",
    "resize": "it can free memory that other arrays still use; use x.reshape(...), or build a "
              "new array (np.zeros, np.concatenate, np.tile)",
    "view": f"{_RAW_MEMORY}; convert with x.astype(np.float64), reshape with x.reshape(...)",
    "fill": "use np.full_like(x, value), or x[...] = value",
    **dict.fromkeys(("put", "itemset"), "assign by index instead: x[i] = value"),
    "flat": "use x.ravel() or x.reshape(-1)",
    **dict.fromkeys(("ctypes", "data", "base", "strides", "setflags", "flags", "getfield",
                     "setfield", "byteswap", "newbyteorder", "tobytes", "tostring"), _RAW_MEMORY),
    **dict.fromkeys(("tofile", "dump", "dumps"), "it writes files or pickles"),
    **dict.fromkeys(("format", "format_map"),
                    "its template can walk attributes out of sight of the checks; use f-strings"),
    **dict.fromkeys(("now", "today", "utcnow", "time", "timestamp", "date"),
                    "a reward must be a deterministic function of the state: there is no clock"),
    **dict.fromkeys(("real", "imag", "conj", "conjugate"),
                    "complex numbers are not available: only bool, integer and float values"),
    "mro": "introspection is not available to reward programs",
}  # fmt: skip

#: Builtins and names that are never allowed, with the reason given to the LLM.
FORBIDDEN_NAMES: Mapping[str, str] = {
    **dict.fromkeys(("eval", "exec", "compile"), "it runs arbitrary code"),
    **dict.fromkeys(("open", "input", "breakpoint", "help", "exit", "quit", "copyright",
                     "credits", "license"), "the reward has no files, console or debugger"),
    **dict.fromkeys(("getattr", "setattr", "delattr", "hasattr", "globals", "locals", "vars",
                     "dir", "type", "object", "super", "id", "memoryview", "classmethod",
                     "staticmethod", "property", "hash"),
                    "introspection is not available to reward programs"),
    **dict.fromkeys(("SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"),
                    "it would try to stop the process instead of reporting an error"),
}  # fmt: skip

_ALLOWED_NODES = (
    ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign, ast.AugAssign,
    ast.AnnAssign, ast.For, ast.While, ast.If, ast.Raise, ast.Assert, ast.Expr, ast.Pass,
    ast.Break, ast.Continue, ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp, ast.Lambda,
    ast.IfExp, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
    ast.Compare, ast.Call, ast.keyword, ast.FormattedValue, ast.JoinedStr, ast.Constant,
    ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List, ast.Tuple, ast.Slice,
    ast.comprehension,
)  # fmt: skip
# Leaf nodes that only tag their parent (Load, Add, Eq, ...): not counted as size or depth.
_TAG_NODES = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)
_PART_NODES = (ast.alias, ast.ExceptHandler, ast.withitem, ast.match_case)
_TRY = "try/except is not allowed: let errors surface, they are reported back to you"
_YIELD = "yield is not allowed: return arrays, not a generator"
_SYNTAX_MESSAGES: dict[type[ast.AST], str] = {
    ast.Import: "imports are not allowed; np (numpy) and math are provided, nothing else",
    ast.ImportFrom: "imports are not allowed; np (numpy) and math are provided, nothing else",
    ast.ClassDef: "classes are not allowed: write functions",
    ast.Global: "global statements are not allowed: a reward keeps no state between calls",
    ast.Nonlocal: "nonlocal statements are not allowed",
    **dict.fromkeys((ast.With, ast.AsyncWith), "with statements are not allowed"),
    ast.Try: _TRY,
    ast.AsyncFunctionDef: "async functions are not allowed",
    ast.AsyncFor: "async loops are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: _YIELD,
    ast.YieldFrom: _YIELD,
    ast.Delete: "del statements are not allowed",
    ast.Match: "match statements are not allowed",
}
if hasattr(ast, "TryStar"):  # Python 3.11+
    _SYNTAX_MESSAGES[ast.TryStar] = _TRY

_MAX_INT = 10**18
_MAX_DIGITS = 10_000
_MAX_PROBLEMS = 5


class ProgramRejected(ValueError):
    """A reward program (or an LLM response) that cannot be run.

    Attributes:
        reason: Machine-readable code of the first problem (see the module docstring).
        message: Every problem found (up to five), with line numbers, readable by the LLM.
        line: Line of the first problem, or None when it has no line.
    """

    def __init__(self, reason: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = line

    def __reduce__(self) -> tuple[type[ProgramRejected], tuple[str, str, int | None]]:
        # Pickled across process pools: rebuilt from all three fields, not from args alone.
        return (type(self), (self.reason, self.message, self.line))


@dataclass(frozen=True)
class ValidatedProgram:
    """A reward program that passed :func:`validate_program`.

    Build it with :func:`validate_program`. Constructing it directly skips validation; the
    sandbox still contains such a program (the tests do this to exercise the process
    boundary).

    Attributes:
        source: The program's source.
        parameters: ``compute_reward``'s parameters, in order: the state variables it reads.
        parameter_shapes: Per-row shape of each parameter (``()`` for a scalar), or None where
            the variables were declared without shapes.
        sha256: Hex digest of ``source`` (UTF-8), for caching and logs.
    """

    source: str
    parameters: tuple[str, ...]
    parameter_shapes: tuple[tuple[int, ...] | None, ...] = ()
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.source.encode()).hexdigest())
        if not self.parameter_shapes:
            object.__setattr__(self, "parameter_shapes", (None,) * len(self.parameters))
        if len(self.parameter_shapes) != len(self.parameters):
            raise ValueError(
                f"{len(self.parameter_shapes)} parameter shapes for "
                f"{len(self.parameters)} parameters"
            )

    def compile_function(
        self, namespace_builtins: Mapping[str, object] = SAFE_BUILTINS
    ) -> Callable[..., Any]:
        """``compute_reward`` compiled **in this process**, for tests and debugging.

        The function runs with ``np``, ``math`` and ``namespace_builtins`` only, but restricted
        builtins are NOT a security boundary: run untrusted programs in a
        :class:`~rewardlab.sandbox.process.SandboxWorker`.

        Example:
            >>> import numpy as np
            >>> program = validate_program("def compute_reward(x):\\n    return x, {}", ["x"])
            >>> program.compile_function()(np.array([1.0]))
            (array([1.]), {})
        """
        return compile_reward_function(self.source, namespace_builtins)


# ---------------------------------------------------------------------------------------------
# Extraction

#: Longest LLM response :func:`extract_code` reads, in characters (a reward program is at most
#: ``validate_program``'s 20,000; this leaves room for prose and several drafts).
MAX_RESPONSE_CHARS = 1_000_000

# Fences are matched line by line, each regex anchored at a line's start and ending at its
# end, so extraction is linear in the response (a regex over the whole text backtracked over
# every run of blank lines: quadratic, minutes on 200k lines).
_OPEN_FENCE = re.compile(r"[ \t]*```[ \t]*([\w+.-]*)")
_CLOSE_FENCE = re.compile(r"[ \t]*```")
# Leading whitespace that cannot cross a newline: `^\s*` retried the same blank lines from
# every line start.
_DEFINES_ENTRY = re.compile(rf"^[^\S\n]*def\s+{ENTRY}\s*\(", re.M)
_PYTHON_FENCES = ("python", "py", "python3")


def extract_code(text: str, *, max_chars: int = MAX_RESPONSE_CHARS) -> str:
    """The reward program in an LLM response, found without evaluating anything.

    Takes the last ```` ```python ```` block that defines ``compute_reward``; failing that, the
    last fenced block of any language that does; failing that, the whole text when it parses
    as Python and defines ``compute_reward`` at the top level. A final block the response
    left unclosed counts. Runs in time linear in the response's length.

    Args:
        text: The LLM's response.
        max_chars: Longest response read; a longer one is rejected before it is parsed.

    Returns:
        The program's source (dedented, without the fences).

    Raises:
        ProgramRejected: With reason ``"too_large"`` for a response over ``max_chars``
            characters, ``"no_code"`` when no candidate is found.

    Example:
        >>> extract_code("Here:\\n```python\\ndef compute_reward(x):\\n    return x, {}\\n```")
        'def compute_reward(x):\\n    return x, {}\\n'
    """
    if len(text) > max_chars:
        raise ProgramRejected(
            "too_large",
            f"the response has {len(text)} characters, at most {max_chars} are read: reply "
            f"with one ```python block that defines {ENTRY}, without long surrounding text",
        )
    blocks = _fenced_blocks(text)
    with_entry = [block for block in blocks if _DEFINES_ENTRY.search(text, block[1], block[2])]
    python = [block for block in with_entry if block[0] in _PYTHON_FENCES]
    if python or with_entry:
        _, start, end = (python or with_entry)[-1]
        return textwrap.dedent(text[start:end])
    if not blocks and _DEFINES_ENTRY.search(text):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if tree is not None and any(
            isinstance(node, ast.FunctionDef) and node.name == ENTRY for node in tree.body
        ):
            return text
    raise ProgramRejected(
        "no_code",
        f"no ```python code block defining {ENTRY}(...) in the response: reply with one "
        f"```python block that defines {ENTRY} taking the state variables you use",
    )


def _fenced_blocks(text: str) -> list[tuple[str, int, int]]:
    """``(language, start, end)`` of each fenced block's body in ``text``, in one pass.

    A fence is a line starting with optional spaces and three backticks; an opening fence
    names the language right after them and must end with a newline. The body runs to the
    next line that starts with a fence (the rest of that line is ignored) or to the end of
    the text.
    """
    blocks: list[tuple[str, int, int]] = []
    language: str | None = None  # of the open block; None outside a block
    body = 0
    line = 0
    while True:
        newline = text.find("\n", line)
        line_end = len(text) if newline < 0 else newline
        if language is None:
            opening = _OPEN_FENCE.match(text, line, line_end)
            if opening is not None and newline >= 0:
                language, body = opening.group(1).lower(), newline + 1
        elif _CLOSE_FENCE.match(text, line, line_end):
            blocks.append((language, body, line))
            language = None
        if newline < 0:
            break
        line = newline + 1
    if language is not None:
        blocks.append((language, body, len(text)))
    return blocks


# ---------------------------------------------------------------------------------------------
# Validation


def validate_program(
    source: str,
    variables: Mapping[str, tuple[int, ...]] | Collection[str],
    *,
    max_chars: int = 20_000,
    max_nodes: int = 5_000,
    max_depth: int = 30,
    max_string: int = 1_000,
) -> ValidatedProgram:
    """Check a reward program against the allow-list (see the module docstring).

    Args:
        source: The program (e.g. from :func:`extract_code`).
        variables: The state variables a program may take: names, or a mapping from name to
            per-row shape (``()`` for a scalar), which the sandbox then checks on every call.
        max_chars: Longest source accepted.
        max_nodes: Most AST nodes accepted (operators and load/store tags not counted).
        max_depth: Deepest nesting of statements and expressions accepted (an ``elif``
            chain counts as one level).
        max_string: Longest string constant accepted.

    Returns:
        The program, with its parameters.

    Raises:
        ProgramRejected: Naming the problems with their lines; ``reason`` is the first's code.
        TypeError: When ``variables`` is a string rather than a collection of names.
        ValueError: When a variable's name is not an identifier or its shape not a tuple of
            sizes.

    Example:
        >>> source = '''
        ... def compute_reward(agent_pos, goal_pos):
        ...     dist = np.abs(agent_pos - goal_pos).sum(axis=-1)
        ...     return -dist, {"distance": dist}
        ... '''
        >>> variables = {"agent_pos": (2,), "goal_pos": (2,)}
        >>> validate_program(source, variables).parameters
        ('agent_pos', 'goal_pos')
        >>> try:
        ...     validate_program(source.replace("dist =", "import os; dist ="), variables)
        ... except ProgramRejected as exc:
        ...     print(exc.reason, "|", exc.message)
        import | line 3: imports are not allowed; np (numpy) and math are provided, nothing else
    """
    if isinstance(variables, str):
        raise TypeError(f"variables must be a collection of names, not the string {variables!r}")
    shapes: dict[str, tuple[int, ...] | None] = (
        dict(variables) if isinstance(variables, Mapping) else dict.fromkeys(variables)
    )
    for name, shape in shapes.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise ValueError(f"state variable names must be identifiers, got {name!r}")
        if shape is not None and not (
            isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise ValueError(f"state variable {name!r} has shape {shape}; use a tuple of sizes")

    if len(source) > max_chars:
        raise ProgramRejected(
            "too_large",
            f"the program has {len(source)} characters, at most {max_chars} are allowed: "
            "write a shorter reward",
        )
    try:
        tree = ast.parse(source, filename="<reward_program>")
    except SyntaxError as exc:
        raise ProgramRejected(
            "syntax", f"line {exc.lineno}: syntax error: {exc.msg}", exc.lineno
        ) from None
    except ValueError as exc:  # null bytes
        raise ProgramRejected("syntax", f"the source cannot be parsed: {exc}") from None
    except (RecursionError, MemoryError):
        raise ProgramRejected(
            "nesting", "the program is nested too deeply to parse: flatten its expressions"
        ) from None

    checker = _Checker(source, shapes, max_string)
    nodes, depth = _size(tree)
    if nodes > max_nodes:
        raise ProgramRejected(
            "too_large",
            f"the program has {nodes} syntax nodes, at most {max_nodes} are allowed: write a "
            "shorter reward",
        )
    if depth > max_depth:
        raise ProgramRejected(
            "nesting",
            f"the program nests {depth} levels deep, at most {max_depth} are allowed: split "
            "long expressions into named intermediate values",
        )
    checker.check(tree)
    parameters = checker.entry(tree)
    if checker.problems:
        # In source order; at one position the innermost node first (np.lib before
        # np.lib.format).
        checker.problems.sort(key=lambda problem: problem[0])
        _, line, reason, _ = checker.problems[0]
        messages = [message for *_, message in checker.problems[:_MAX_PROBLEMS]]
        if len(checker.problems) > _MAX_PROBLEMS:
            messages.append(f"... and {len(checker.problems) - _MAX_PROBLEMS} more problems")
        raise ProgramRejected(reason, "\n".join(messages), line)
    assert parameters is not None
    return ValidatedProgram(source, parameters, tuple(shapes[p] for p in parameters))


def _size(tree: ast.AST) -> tuple[int, int]:
    """(number of nodes, nesting depth), walked without recursion."""
    count = depth = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, level = stack.pop()
        count += 1
        depth = max(depth, level)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _TAG_NODES):
                continue
            elif_ = (
                isinstance(node, ast.If) and node.orelse == [child] and isinstance(child, ast.If)
            )
            stack.append((child, level if elif_ else level + 1))
    return count, depth


class _Checker:
    """Collects the problems of one program."""

    def __init__(
        self, source: str, shapes: Mapping[str, tuple[int, ...] | None], max_string: int
    ) -> None:
        self.source = source
        self.shapes = shapes
        self.max_string = max_string
        # (sort key, line, reason, message)
        self.problems: list[tuple[tuple[float, ...], int | None, str, str]] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        self.bound = set(SAFE_BUILTINS) | {"np", "math"}

    def problem(self, node: ast.AST | None, reason: str, message: str) -> None:
        line = getattr(node, "lineno", None)
        key = (
            math.inf if line is None else line,
            getattr(node, "col_offset", 0),
            getattr(node, "end_col_offset", None) or 0,
        )
        self.problems.append((key, line, reason, f"line {line}: {message}" if line else message))

    def snippet(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        text = " ".join(text.split())
        return text if len(text) <= 60 else text[:57] + "..."

    def check(self, tree: ast.Module) -> None:
        roots: list[ast.expr | None] = []  # of annotations
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                self.bound.add(node.id)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
                roots.append(node.annotation)
            elif isinstance(node, ast.FunctionDef):
                self.bound.add(node.name)
                roots.append(node.returns)
            elif isinstance(node, ast.AnnAssign):
                roots.append(node.annotation)
        annotations = {sub for root in roots if root is not None for sub in ast.walk(root)}

        body = tree.body[1:] if ast.get_docstring(tree, clean=False) is not None else tree.body
        for stmt in body:
            if not (isinstance(stmt, ast.FunctionDef) or type(stmt) in _SYNTAX_MESSAGES):
                self.problem(
                    stmt,
                    "module_level",
                    f"only function definitions may appear at the top level, found "
                    f"`{self.snippet(stmt)}`; put constants and code inside {ENTRY} or a helper",
                )

        # The checks of the allowed node types that have one, besides their children's.
        rules: dict[type[ast.AST], Callable[[Any], None]] = {
            ast.Name: lambda node: self.name(node, node.id, load=isinstance(node.ctx, ast.Load)),
            ast.arg: lambda node: self.name(node, node.arg, load=False),
            ast.FunctionDef: self.function,
            ast.Attribute: self.attribute,
            ast.Call: self.call,
            ast.Constant: self.constant,
            ast.BinOp: self.power,
            ast.AugAssign: self.augmented_assignment,
        }
        for node in ast.walk(tree):
            if node in annotations:
                continue  # compiled as strings, never evaluated
            if isinstance(node, (_TAG_NODES, _PART_NODES)):
                continue  # tags, and parts of statements rejected as a whole
            syntax = _SYNTAX_MESSAGES.get(type(node))
            if syntax is not None:
                imports = isinstance(node, (ast.Import, ast.ImportFrom))
                self.problem(node, "import" if imports else "forbidden_syntax", syntax)
            elif not isinstance(node, _ALLOWED_NODES):
                self.problem(
                    node,
                    "forbidden_syntax",
                    f"`{self.snippet(node)}` ({type(node).__name__}) is not allowed",
                )
            else:
                for kind, rule in rules.items():
                    if isinstance(node, kind):
                        rule(node)

    def name(self, node: ast.AST, name: str, load: bool) -> None:
        if self.underscore(node, name):
            return
        if name in FORBIDDEN_NAMES:
            self.problem(
                node, "forbidden_name", f"`{name}` is not allowed: {FORBIDDEN_NAMES[name]}"
            )
        elif name in _UNBINDABLE and not load:
            self.unbindable(node, name)
        elif name in ("np", "math"):
            if not load:
                self.problem(node, "forbidden_name", f"`{name}` cannot be redefined")
            elif not _is_attribute_base(node, self.parents):
                self.problem(
                    node,
                    "forbidden_name",
                    f"`{name}` may only be used as {name}.<function>, e.g. "
                    f"{'np.exp(x)' if name == 'np' else 'math.pi'}; it cannot be passed around",
                )
        elif load and name not in self.bound:
            hint = (
                "; to inspect a value, return it as a component"
                if name == "print"
                else "; import nothing: use np.<function> and math.<function>"
            )
            self.problem(
                node,
                "unknown_name",
                f"name `{name}` is not defined: a program may use its parameters, names it "
                f"assigns, its functions, np, math and the builtins "
                f"{', '.join(sorted(b for b in SAFE_BUILTINS if b[0] != '_'))}{hint}",
            )

    def underscore(self, node: ast.AST, name: str) -> bool:
        if not name.startswith("_"):
            return False
        prefix, reason = ("__", "dunder") if name.startswith("__") else ("_", "private")
        self.problem(
            node, reason, f"`{name}`: names and attributes starting with '{prefix}' are not allowed"
        )
        return True

    def unbindable(self, node: ast.AST, name: str) -> None:
        self.problem(node, "forbidden_name", f"`{name}` cannot be redefined: {_UNBINDABLE[name]}")

    def function(self, node: ast.FunctionDef) -> None:
        if self.underscore(node, node.name):
            return
        if node.name in _UNBINDABLE:
            self.unbindable(node, node.name)
        if node.decorator_list:
            self.problem(node, "forbidden_syntax", f"decorators are not allowed (on {node.name})")
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None and not _is_literal(default):
                self.problem(
                    default,
                    "forbidden_syntax",
                    f"default values must be literal constants, found `{self.snippet(default)}`",
                )

    def augmented_assignment(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, ast.Mod) and not isinstance(node.target, ast.Name):
            # The worker checks what % formats (worker._GuardText), which needs the target read
            # once: possible for a name only.
            target = self.snippet(node.target)
            self.problem(
                node,
                "forbidden_syntax",
                f"`{target} %= ...` is not allowed: write {target} = {target} % ...",
            )

    def attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if self.underscore(node, attr):
            return
        if not isinstance(node.ctx, ast.Load):
            self.problem(
                node,
                "forbidden_syntax",
                f"assigning or deleting attributes (`.{attr}`) is not allowed",
            )
            return
        base = node.value
        if isinstance(base, ast.Name) and base.id == "np":
            if attr not in NUMPY_ALLOWED:
                why = f" ({_NUMPY_WHY[attr]})" if attr in _NUMPY_WHY else ""
                self.problem(
                    node,
                    "forbidden_attribute",
                    f"np.{attr} is not available to reward programs{why}; use elementwise math "
                    "(np.exp, np.clip, np.where, ...), reductions (np.sum, np.linalg.norm, ...) "
                    "and array construction (np.zeros, np.stack, ...)",
                )
            elif attr == "linalg" and not _is_attribute_base(node, self.parents):
                self.problem(
                    node, "forbidden_name", "np.linalg may only be used as np.linalg.<function>"
                )
            elif attr in _NUMPY_DTYPE_SLOTS and not _is_called(node, self.parents):
                self.problem(node, "forbidden_attribute", _not_called_message(f"np.{attr}"))
            return
        if _beneath_rejected_numpy(base):
            return  # np.random.rand: np.random is reported, its attribute would only add noise
        if _numpy_name(base) == "linalg":
            if attr not in NUMPY_LINALG_ALLOWED:
                self.problem(
                    node,
                    "forbidden_attribute",
                    f"np.linalg.{attr} is not available; allowed: "
                    f"{', '.join(sorted(NUMPY_LINALG_ALLOWED))}",
                )
            return
        if isinstance(base, ast.Name) and base.id == "math":
            if attr not in MATH_ALLOWED:
                self.problem(
                    node,
                    "forbidden_attribute",
                    f"math.{attr} is not available; use one of {', '.join(sorted(MATH_ALLOWED))}",
                )
            return
        scalar_type = _numpy_name(base)
        if scalar_type in _NUMPY_TYPES:
            # np.float64.astype(value, dtype): called through the class, the dtype moves to
            # where a check of value.astype(dtype) does not look.
            self.problem(
                node,
                "forbidden_attribute",
                f"`np.{scalar_type}.{attr}`: the attributes of numpy's scalar types are not "
                f"available; call methods on values (x.astype(np.float64)) and convert with "
                f"np.{scalar_type}(x)",
            )
        elif attr not in ALLOWED_ATTRIBUTES:
            self.problem(node, "forbidden_attribute", _attribute_message(node))
        elif attr in _METHOD_DTYPE_SLOTS and not _is_called(node, self.parents):
            self.problem(node, "forbidden_attribute", _not_called_message(self.snippet(node)))

    def call(self, node: ast.Call) -> None:
        """Keywords that switch numpy's checks off, ``**mapping``, and dtype arguments."""
        for keyword in node.keywords:
            if keyword.arg is None:
                self.problem(
                    keyword,
                    "forbidden_argument",
                    f"`{self.snippet(keyword)}`: passing keyword arguments with ** is not "
                    "allowed; name each one (f(x, axis=-1))",
                )
            elif keyword.arg in UNSAFE_KEYWORDS:
                self.problem(
                    keyword,
                    "forbidden_argument",
                    f"the keyword argument `{keyword.arg}=` is not allowed: "
                    f"{UNSAFE_KEYWORDS[keyword.arg]}",
                )
            elif keyword.arg == "dtype":
                self.dtype(keyword.value)
        self.where_without_out(node)
        slots = _dtype_slots(node.func)
        if not slots:
            return
        starred = [arg for arg in node.args if isinstance(arg, ast.Starred)]
        if starred:
            self.problem(
                starred[0],
                "forbidden_argument",
                f"`{self.snippet(starred[0])}` in a call to `{self.snippet(node.func)}`: pass its "
                "arguments one by one, so that its dtype argument can be checked",
            )
            return
        for slot in slots:
            if slot < len(node.args):
                self.dtype(node.args[slot])

    def where_without_out(self, node: ast.Call) -> None:
        """``where=`` needs ``out=`` a freshly filled array, except in a reduction (see
        ``_WHERE_REDUCTIONS``): any other ``out`` may be None (``out=(None,)``, a variable),
        which allocates an uninitialised one."""
        keywords = {keyword.arg: keyword for keyword in node.keywords}
        where = keywords.get("where")
        if where is None:
            return
        out = keywords.get("out")
        if out is not None and _is_filled_array(out.value):
            return
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _WHERE_REDUCTIONS:
            return
        call = self.snippet(func)
        self.problem(
            where,
            "forbidden_argument",
            f"`where=` in `{call}(...)` needs `out=` a new filled array (np.zeros_like(...), "
            "np.zeros(...), np.full_like(...), ...): the masked-off entries are otherwise "
            f"uninitialised (arbitrary values, different on every call); e.g. {call}(a, b, "
            "out=np.zeros_like(a), where=mask), or compute everywhere and select with "
            "np.where(mask, value, 0.0)",
        )

    def dtype(self, node: ast.expr) -> None:
        """A dtype argument must name a bool, integer or float dtype literally."""
        if _is_numeric_dtype(node):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            why = (
                f"{node.value!r} is not a bool, integer or float dtype (object, datetime, string, "
                "complex and structured dtypes are not available)"
            )
        elif isinstance(node, (ast.List, ast.Tuple, ast.Dict)):
            why = "structured dtypes (lists of fields) are not available"
        elif (
            isinstance(node, ast.Constant)
            or (isinstance(node, ast.Name) and node.id in ("str", "bytes", "object", "complex"))
            or _numpy_name(node) is not None
        ):
            why = "only bool, integer and float dtypes are available"
        else:
            why = (
                "a dtype chosen at run time cannot be checked; write it out (or use "
                "np.zeros_like(x) to keep x's dtype)"
            )
        self.problem(
            node,
            "forbidden_dtype",
            f"`{self.snippet(node)}` as a dtype: {why}; use np.float64, np.float32, np.int64, "
            'np.bool_, float, int, bool or a string such as "float32"',
        )

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, (str, bytes)) and len(value) > self.max_string:
            self.problem(
                node,
                "constant",
                f"a string constant of {len(value)} characters; at most {self.max_string} allowed",
            )
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
            self.problem(node, "constant", "integer literals must be below 1e18; use a float")

    def power(self, node: ast.BinOp) -> None:
        if not isinstance(node.op, (ast.Pow, ast.LShift)):
            return
        left, right = _int_value(node.left), _int_value(node.right)
        if left is None or right is None or right <= 0 or left == 0:
            return
        if isinstance(node.op, ast.Pow):
            digits = right * math.log10(abs(left))
        else:
            digits = right * math.log10(2) + math.log10(abs(left))
        if digits > _MAX_DIGITS:
            self.problem(
                node,
                "constant",
                f"`{self.snippet(node)}` would be an integer of ~{digits:.3g} digits; use floats "
                "(e.g. 1e10) for large constants",
            )

    def entry(self, tree: ast.Module) -> tuple[str, ...] | None:
        """Check ``compute_reward``'s definition and signature; its parameters."""
        defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == ENTRY]
        if not defs:
            self.problem(
                None,
                "no_entry",
                f"the program defines no top-level function {ENTRY}: define "
                f"`def {ENTRY}({', '.join(self.shapes) or '...'}):` taking the state variables "
                "you use",
            )
            return None
        for extra in defs[1:]:
            self.problem(
                extra, "duplicate_entry", f"{ENTRY} is defined {len(defs)} times; define it once"
            )
        args = defs[-1].args
        if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
            self.problem(
                defs[-1],
                "bad_signature",
                f"{ENTRY} must take plain parameters, each named after a state variable, without "
                "*args, **kwargs, keyword-only parameters or defaults",
            )
        names = tuple(a.arg for a in args.args)
        if not names:
            self.problem(
                defs[-1],
                "bad_signature",
                f"{ENTRY} must take at least one state variable: {', '.join(self.shapes)}",
            )
        for arg in args.args:
            if arg.arg not in self.shapes:
                valid = ", ".join(
                    name if shape is None else f"{name} {shape}"
                    for name, shape in self.shapes.items()
                )
                self.problem(
                    arg,
                    "unknown_variable",
                    f"{ENTRY} parameter `{arg.arg}` is not a state variable; parameters must be "
                    f"named after the variables, which are (per-row shapes): {valid}",
                )
        return names


def _is_attribute_base(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Attribute) and parent.value is node


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_literal(node.operand)
    if isinstance(node, ast.Tuple):
        return all(_is_literal(element) for element in node.elts)
    return False


def _int_value(node: ast.AST) -> int | None:
    """The integer a constant expression evaluates to, if small enough to compute safely."""
    if isinstance(node, ast.Constant):
        value = node.value
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.Mult)):
        left, right = _int_value(node.left), _int_value(node.right)
        if left is None or right is None or abs(left) <= 1:
            return None
        if isinstance(node.op, ast.Mult):
            return left * right if abs(left) < _MAX_INT and abs(right) < _MAX_INT else None
        if right >= 0 and right * math.log10(abs(left)) <= 100:
            return int(left**right)
    return None


def _is_called(node: ast.AST, parents: Mapping[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Call) and parent.func is node


# np.<name>(...) that return a new array with every entry written: an ``out=`` that cannot be
# None or uninitialised.
_FILLED = _words("zeros zeros_like ones ones_like full full_like copy array")


def _is_filled_array(node: ast.AST) -> bool:
    """Whether ``node`` is a call that returns a new array with every entry set."""
    return isinstance(node, ast.Call) and _numpy_name(node.func) in _FILLED


def _beneath_rejected_numpy(node: ast.AST) -> bool:
    """Whether ``node`` is, or is an attribute of, an ``np.<name>`` that is not allowed."""
    while isinstance(node, ast.Attribute):
        name = _numpy_name(node)
        if name is not None:
            return name not in NUMPY_ALLOWED
        node = node.value
    return False


def _numpy_name(node: ast.AST) -> str | None:
    """``<name>`` when ``node`` is ``np.<name>``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "np" else None
    return None


def _dtype_slots(func: ast.AST) -> tuple[int, ...]:
    """Positions of the dtype argument in a call to ``func``, where it takes one."""
    name = _numpy_name(func)
    if name is not None:
        slot = _NUMPY_DTYPE_SLOTS.get(name)
        return () if slot is None else (slot,)
    if (
        isinstance(func, ast.Attribute)
        and not (isinstance(func.value, ast.Name) and func.value.id == "math")
        and func.attr in _METHOD_DTYPE_SLOTS
    ):
        slot = _METHOD_DTYPE_SLOTS[func.attr]
        return (slot, slot + 1)
    return ()


def _is_numeric_dtype(node: ast.AST) -> bool:
    """A literal bool, integer or float dtype (or None: numpy's default)."""
    if isinstance(node, ast.Name):
        return node.id in _BUILTIN_DTYPES  # programs cannot rebind these names
    if not isinstance(node, ast.Constant):
        return _numpy_name(node) in _NUMPY_DTYPES
    if not isinstance(node.value, str):
        return node.value is None
    try:
        dtype = np.dtype(node.value)
    except Exception:  # numpy's parser raises several types; any of them means "not a dtype"
        return False
    return (
        dtype.kind in "biuf"
        and dtype.itemsize <= 8
        and dtype.isnative
        and dtype.fields is None
        and dtype.subdtype is None
    )


def _attribute_message(node: ast.Attribute) -> str:
    attr = node.attr
    if isinstance(node.value, ast.Attribute) and node.value.attr == "dtype":
        return (
            f"`.dtype.{attr}` is not allowed: a dtype's attributes are not available; compare "
            "dtypes directly (x.dtype == np.float32) or convert with x.astype(np.float64)"
        )
    why = _ATTRIBUTE_WHY.get(attr)
    if why is None and attr in NUMPY_ALLOWED and hasattr(np.ndarray, attr):
        why = f"use np.{attr}(x, ...) instead"
    allowed = " ".join(f".{name}" for name in sorted(ALLOWED_ATTRIBUTES, key=str.lower))
    return (
        f"the attribute `.{attr}` is not allowed"
        + (f": {why}" if why else "")
        + f"; programs may use only these attributes and methods: {allowed}"
    )


def _not_called_message(name: str) -> str:
    return (
        f"`{name}` must be called where it is named (e.g. `{name}(...)`), not stored or passed "
        "as a value: its dtype argument would escape the checks"
    )
