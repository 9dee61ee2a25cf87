"""Running untrusted reward programs: validation, the worker process, its protocol and guards.

- :mod:`~rewardlab.sandbox.validation`: extract a program from an LLM response and check it
  against an allow-list without running it (:func:`validate_program`).
- :mod:`~rewardlab.sandbox.process`: run a validated program in a confined worker process
  (:class:`SandboxWorker`, :class:`SandboxLimits`); failures are :class:`ProgramContained`.
- :mod:`~rewardlab.sandbox.guard`: what training needs around a worker (:class:`GuardedProgram`:
  non-finite values, clipping, a failure budget, statistics).
- ``worker.py`` and ``protocol.py``: the worker process itself and the frames both sides
  exchange.

The README's security section says what each layer protects against.
"""

from rewardlab.sandbox.guard import GuardedProgram, GuardedStats, RunningStats
from rewardlab.sandbox.process import (
    ProgramContained,
    RewardCallResult,
    SandboxLimits,
    SandboxWorker,
)
from rewardlab.sandbox.validation import (
    ProgramRejected,
    ValidatedProgram,
    extract_code,
    validate_program,
)

__all__ = [
    "GuardedProgram",
    "GuardedStats",
    "ProgramContained",
    "ProgramRejected",
    "RewardCallResult",
    "RunningStats",
    "SandboxLimits",
    "SandboxWorker",
    "ValidatedProgram",
    "extract_code",
    "validate_program",
]
