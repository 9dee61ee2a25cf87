"""A module registering a task, as a user's would: imported by ``--tasks`` (by name or path)."""

from __future__ import annotations

import numpy as np

import rewardlab
from rewardlab.envs.core import StateVariable
from tests.envs.line_walk import IDS

rewardlab.register_task(
    IDS[1],
    name="walk_to_the_end",
    goal="a white square at the right end of the line",
    baseline="a white square on a black line",
    success="at_goal",
    progress=lambda env: env.pos / (env.length - 1),
    state_variables=[StateVariable("pos", (), "cell", "the agent's cell, 0 at the left end")],
    state=lambda env: {"pos": np.array(env.pos)},
    expert=lambda env, obs: 2,
    idle_action=lambda env: 1,
    dense_reward_type="env",
    replace=True,
)
