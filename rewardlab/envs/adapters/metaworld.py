"""Tasks of Meta-World's 50 manipulation envs (Yu et al. 2019, "Meta-World: A Benchmark and
Evaluation for Multi-Task and Meta Reinforcement Learning", arXiv:1910.10897), version 3.

One adapter serves every ``Meta-World/*`` id whose env is a single task (``Meta-World/MT1``,
``Meta-World/goal_observable``, ``Meta-World/goal_hidden``): the task is read from the env's
class. The vector-only ids (``MT10``, ``ML1-train``, ...) make vector envs, which have no task
of their own.

Make one with the task's name::

    rewardlab.make("Meta-World/MT1", env_name="reach-v3")       # 50 goal variations
    rewardlab.make("Meta-World/MT1", env_name="push-v3", seed=0)  # the same 50 every time

Episodes: ``MT1`` wraps the env in a ``TimeLimit`` of its ``max_path_length`` (500 steps), and
the env itself truncates at that step and raises ``ValueError`` on any step after it without a
reset; every episode ends cleanly at step 500 at the latest. ``SawyerXYZEnv.reset`` ignores
its ``seed`` (its docstring: "use seed()"), so :meth:`MetaWorldTask.wrap` reseeds the env
(``unwrapped.seed``) on ``reset(seed=...)``: with ``MT1``'s goal set fixed by ``seed=``, a
seeded reset then reproduces the episode (the goal variation drawn and the arm's start).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rewardlab.envs.adapters._distance import distance_progress
from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import TaskAdapter

__all__ = ["TASKS", "MetaWorldTask"]

TASKS: dict[str, tuple[str, str, str]] = {
    # name: (the task as the Meta-World paper states it, goal caption, negative caption)
    "assembly-v3": (
        "pick up a nut and place it onto a peg",
        "a robot arm placing a green nut around a red peg",
        "a green nut lying on the table away from a red peg",
    ),
    "basketball-v3": (
        "dunk the basketball into the basket",
        "a robot arm dunking a basketball into a hoop",
        "a basketball lying on the table below a hoop",
    ),
    "bin-picking-v3": (
        "grasp the puck from one bin and place it into another bin",
        "a robot arm placing a green cube into the blue bin",
        "a green cube lying in the red bin",
    ),
    "box-close-v3": (
        "grasp the cover and close the box with it",
        "a robot arm putting the lid on top of a box",
        "an open box with its lid lying on the table",
    ),
    "button-press-topdown-v3": (
        "press a button from the top",
        "a robot arm pressing a red button down from above",
        "a robot arm far above an unpressed red button",
    ),
    "button-press-topdown-wall-v3": (
        "bypass a wall and press a button from the top",
        "a robot arm pressing a red button down from above, behind a wall",
        "a robot arm far from an unpressed red button behind a wall",
    ),
    "button-press-v3": (
        "press a button",
        "a robot arm pressing a red button into its box",
        "a robot arm far from an unpressed red button",
    ),
    "button-press-wall-v3": (
        "bypass a wall and press a button",
        "a robot arm reaching around a wall and pressing a red button",
        "a robot arm stopped in front of a wall, the red button unpressed",
    ),
    "coffee-button-v3": (
        "push a button on the coffee machine",
        "a robot arm pressing the button of a coffee machine",
        "a robot arm far from a coffee machine",
    ),
    "coffee-pull-v3": (
        "pull a mug from a coffee machine",
        "a robot arm holding a mug pulled away from a coffee machine",
        "a mug standing under the spout of a coffee machine",
    ),
    "coffee-push-v3": (
        "push a mug under a coffee machine",
        "a mug standing under the spout of a coffee machine",
        "a mug standing on the table away from a coffee machine",
    ),
    "dial-turn-v3": (
        "rotate a dial 180 degrees",
        "a robot arm turning a dial half a turn",
        "a robot arm far from an unturned dial",
    ),
    "disassemble-v3": (
        "pick a nut out of a peg",
        "a robot arm lifting a green nut up off a red peg",
        "a green nut resting around a red peg",
    ),
    "door-close-v3": (
        "close a door with a revolving joint",
        "a robot arm next to a closed door",
        "a door standing wide open",
    ),
    "door-lock-v3": (
        "lock the door by rotating the lock clockwise",
        "a robot arm turning a door lock down into the locked position",
        "a door lock in the unlocked position",
    ),
    "door-open-v3": (
        "open a door with a revolving joint",
        "a robot arm pulling a door wide open",
        "a closed door",
    ),
    "door-unlock-v3": (
        "unlock the door by rotating the lock counter-clockwise",
        "a robot arm turning a door lock up into the unlocked position",
        "a door lock in the locked position",
    ),
    "hand-insert-v3": (
        "insert the gripper into a hole",
        "a robot arm pushing a block into a hole in the table",
        "a block lying on the table away from a hole",
    ),
    "drawer-close-v3": (
        "push and close a drawer",
        "a robot arm next to a closed drawer",
        "a drawer pulled wide open",
    ),
    "drawer-open-v3": (
        "open a drawer",
        "a robot arm pulling a drawer wide open",
        "a closed drawer",
    ),
    "faucet-open-v3": (
        "rotate the faucet counter-clockwise",
        "a robot arm turning a faucet handle open",
        "a closed faucet",
    ),
    "faucet-close-v3": (
        "rotate the faucet clockwise",
        "a robot arm turning a faucet handle closed",
        "an open faucet",
    ),
    "hammer-v3": (
        "hammer a screw on the wall",
        "a robot arm hammering a nail into a wall",
        "a hammer lying on the table, the nail sticking out of the wall",
    ),
    "handle-press-side-v3": (
        "press a handle down sideways",
        "a robot arm pressing a handle all the way down from the side",
        "a handle sticking up, not pressed",
    ),
    "handle-press-v3": (
        "press a handle down",
        "a robot arm pressing a handle all the way down",
        "a handle sticking up, not pressed",
    ),
    "handle-pull-side-v3": (
        "pull a handle up sideways",
        "a robot arm pulling a handle all the way up from the side",
        "a handle pressed down",
    ),
    "handle-pull-v3": (
        "pull a handle up",
        "a robot arm pulling a handle all the way up",
        "a handle pressed down",
    ),
    "lever-pull-v3": (
        "pull a lever down 90 degrees",
        "a robot arm pulling a lever up to vertical",
        "a lever lying flat, not pulled",
    ),
    "peg-insert-side-v3": (
        "insert a peg sideways",
        "a robot arm inserting a green peg sideways into a hole in a box",
        "a green peg lying on the table away from a box with a hole",
    ),
    "pick-place-wall-v3": (
        "pick a puck, bypass a wall and place the puck",
        "a robot arm holding a red puck over a wall at the goal",
        "a red puck lying on the table in front of a wall",
    ),
    "pick-out-of-hole-v3": (
        "pick up a puck from a hole",
        "a robot arm lifting a red puck out of a hole",
        "a red puck sitting in a hole in the table",
    ),
    "reach-v3": (
        "reach a goal position",
        "a robot arm reaching a goal position",
        "a robot arm far from the goal position",
    ),
    "push-back-v3": (
        "pull a puck to a goal",
        "a robot arm pulling a puck back onto the goal",
        "a puck on the table far from the goal",
    ),
    "push-v3": (
        "push the puck to a goal",
        "a robot arm pushing a red puck onto the goal",
        "a red puck on the table far from the goal",
    ),
    "pick-place-v3": (
        "pick and place a puck to a goal",
        "a robot arm holding a red puck at the goal in the air",
        "a red puck lying on the table",
    ),
    "plate-slide-v3": (
        "slide a plate into a cabinet",
        "a robot arm sliding a plate into the goal of a cabinet",
        "a plate on the table in front of a cabinet",
    ),
    "plate-slide-side-v3": (
        "slide a plate into a cabinet sideways",
        "a robot arm sliding a plate sideways into the goal of a cabinet",
        "a plate on the table beside a cabinet",
    ),
    "plate-slide-back-v3": (
        "get a plate from the cabinet",
        "a robot arm sliding a plate out of a cabinet onto the table",
        "a plate inside a cabinet",
    ),
    "plate-slide-back-side-v3": (
        "get a plate from the cabinet sideways",
        "a robot arm sliding a plate sideways out of a cabinet",
        "a plate inside a cabinet",
    ),
    "peg-unplug-side-v3": (
        "unplug a peg sideways",
        "a robot arm pulling a peg sideways out of a box",
        "a peg plugged into a box",
    ),
    "soccer-v3": (
        "kick a soccer into the goal",
        "a soccer ball inside a small goal net",
        "a soccer ball on the table in front of a goal net",
    ),
    "stick-push-v3": (
        "grasp a stick and push a box using the stick",
        "a robot arm holding a stick that pushed a thermos to the goal",
        "a stick lying on the table next to a thermos",
    ),
    "stick-pull-v3": (
        "grasp a stick and pull a box with the stick",
        "a robot arm pulling a thermos by its handle with a stick",
        "a stick lying on the table next to a thermos",
    ),
    "push-wall-v3": (
        "bypass a wall and push a puck to a goal",
        "a robot arm pushing a red puck around a wall onto the goal",
        "a red puck on the table in front of a wall",
    ),
    "reach-wall-v3": (
        "bypass a wall and reach a goal",
        "a robot arm reaching over a wall to a goal position",
        "a robot arm in front of a wall, far from the goal",
    ),
    "shelf-place-v3": (
        "pick and place a puck onto a shelf",
        "a robot arm placing a blue block onto a shelf",
        "a blue block lying on the table in front of a shelf",
    ),
    "sweep-into-v3": (
        "sweep a puck into a hole",
        "a robot arm sweeping a block into a hole in the table",
        "a block lying on the table away from a hole",
    ),
    "sweep-v3": (
        "sweep a puck off the table",
        "a robot arm sweeping a block off the edge of the table",
        "a block lying in the middle of the table",
    ),
    "window-open-v3": (
        "push and open a window",
        "a robot arm sliding a window open",
        "a closed window",
    ),
    "window-close-v3": (
        "push and close a window",
        "a robot arm sliding a window closed",
        "an open window",
    ),
}
"""Meta-World's 50 tasks: the task (the paper's wording), a caption of success and of failure."""

_REACH_TASKS = frozenset({"reach-v3", "reach-wall-v3"})  # no object to approach first

RADIUS: dict[str, float] = {
    # The threshold each task's evaluate_state (v2) puts on its success distance
    # (_success_distance). assembly, stick-push and stick-pull need more than the distance (the
    # nut below the peg's top, the stick grasped or inserted).
    "assembly-v3": 0.02,
    "basketball-v3": 0.08,
    "bin-picking-v3": 0.05,
    "box-close-v3": 0.08,
    "button-press-topdown-v3": 0.024,
    "button-press-topdown-wall-v3": 0.024,
    "button-press-v3": 0.02,
    "button-press-wall-v3": 0.03,
    "coffee-button-v3": 0.02,
    "coffee-pull-v3": 0.07,
    "coffee-push-v3": 0.07,
    "dial-turn-v3": 0.07,
    "disassemble-v3": 0.0,
    "door-close-v3": 0.08,
    "door-lock-v3": 0.02,
    "door-open-v3": 0.08,
    "door-unlock-v3": 0.02,
    "hand-insert-v3": 0.05,
    "drawer-close-v3": 0.065,
    "drawer-open-v3": 0.03,
    "faucet-open-v3": 0.07,
    "faucet-close-v3": 0.07,
    "hammer-v3": 0.0,
    "handle-press-side-v3": 0.02,
    "handle-press-v3": 0.02,
    "handle-pull-side-v3": 0.08,
    "handle-pull-v3": 0.05,
    "lever-pull-v3": np.pi / 24.0,
    "peg-insert-side-v3": 0.07,
    "pick-place-wall-v3": 0.07,
    "pick-out-of-hole-v3": 0.07,
    "reach-v3": 0.05,
    "push-back-v3": 0.07,
    "push-v3": 0.05,
    "pick-place-v3": 0.07,
    "plate-slide-v3": 0.07,
    "plate-slide-side-v3": 0.07,
    "plate-slide-back-v3": 0.07,
    "plate-slide-back-side-v3": 0.07,
    "peg-unplug-side-v3": 0.07,
    "soccer-v3": 0.07,
    "stick-push-v3": 0.12,
    "stick-pull-v3": 0.12,
    "push-wall-v3": 0.07,
    "reach-wall-v3": 0.05,
    "shelf-place-v3": 0.07,
    "sweep-into-v3": 0.05,
    "sweep-v3": 0.05,
    "window-open-v3": 0.05,
    "window-close-v3": 0.05,
}
"""Each task's success radius on its success distance (see :class:`MetaWorldTask`)."""


def _success_distance(name: str, env: Any, info: Mapping[str, Any]) -> float:
    """The distance a task's success thresholds: its ``info["obj_to_target"]`` where that is
    it, else the quantity its ``evaluate_state`` / ``compute_reward`` (v2) compares."""
    if name == "assembly-v3":  # success: nut centre within 2 cm of the peg in x-y, below its top
        return float(np.linalg.norm((env._target_pos - env._get_site_pos("RoundNut"))[:2]))
    if name == "box-close-v3":  # success: lid within 8 cm of the box's top
        return float(np.linalg.norm(env._get_pos_objects() - env._target_pos))
    if name == "disassemble-v3":  # success: nut above the target height
        return max(0.0, float(env._target_pos[2] - env._get_pos_objects()[2]))
    if name == "door-open-v3":  # success: handle within 8 cm of the target in x
        return abs(float(env._get_pos_objects()[0] - env._target_pos[0]))
    if name == "hammer-v3":  # success: nail driven in more than 9 cm
        return max(0.0, 0.09 - float(env.data.joint("NailSlideJoint").qpos.item()))
    if name == "lever-pull-v3":  # success: lever within 7.5 degrees of vertical
        return abs(-float(env.data.joint("LeverAxis").qpos.item()) - np.pi / 2.0)
    if name == "stick-pull-v3":  # success: the thermos' handle within 12 cm (and the stick in)
        return float(np.linalg.norm(env._get_pos_objects()[3:6] - env._target_pos))
    return float(info["obj_to_target"])


class _SeededReset(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Reseed a Meta-World env on ``reset(seed=...)``: ``SawyerXYZEnv.reset`` ignores its
    seed, and ``MT1``'s goal draw and ``action_space`` use the env's ``np_random``."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.env.unwrapped.seed(seed)  # type: ignore[attr-defined]
        return self.env.reset(seed=seed, options=options)


class MetaWorldTask(TaskAdapter):
    """The task of a Meta-World env (any of its 50), read from the env's class.

    Success (the env's own): ``info["success"]`` (a float) above 0.5, which each task's
    ``evaluate_state`` computes from the state alone (e.g. ``reach-v3``: the fingers' centre
    within 5 cm of the goal; ``push-v3``: the puck within 5 cm; ``button-press-v3``: the button
    within 2 cm of pressed). Reset infos lack it, so there the adapter evaluates the state
    with the task's ``evaluate_state`` (its attributes restored after: ``bin-picking-v3``
    caches a margin at its first call).

    Progress: 1 in success states (the task's ``evaluate_state`` on the current state, which
    agrees with ``info["success"]``). Otherwise ``0.8 * place + 0.2 * reach``, with
    ``place = clip((d0 - d) / (d0 - r), 0, 1)`` for the task's success distance ``d`` (its
    ``info["obj_to_target"]``, or the quantity its success thresholds where that is not it:
    :func:`_success_distance`) and success radius ``r`` (:data:`RADIUS`): 0 at the start,
    rising linearly to 1 where the radius is met; and ``reach = clip(1 - h / h0, 0, 1)`` for
    the distance ``h`` from the fingers' centre (``tcp_center``) to the first object, the
    approach the object's distance does not see (``reach-v3`` and ``reach-wall-v3``, with no
    object to approach, are ``place`` alone). ``d0`` and ``h0`` are the values at reset,
    cached by :meth:`on_reset` (and taken again whenever the env is at its first step). Never
    1 outside success.

    Expert: Meta-World's scripted policy for the task (``metaworld.policies``), fed the
    observation rebuilt from the state with the true goal (so it also acts in goal-hidden
    envs), its action clipped to the action space. All 50 succeed in seeded ``MT1`` episodes;
    a few (``peg-insert-side``, ``push-back``, ``soccer``) miss now and then.

    Idle action: zeros (the hand holds its position, no gripper effort).

    Reward: the env's own (v2, in [0, 10], 10 at success) is the task's reference dense
    reward (``dense_reward_type="env"``).
    """

    baseline = "a red robot arm next to objects on a wooden table"
    state_variables: tuple[StateVariable, ...] = (
        StateVariable("hand_pos", (3,), "m", "end effector (body 'hand') position, world frame"),
        StateVariable(
            "gripper_distance",
            (),
            "-",
            "distance between the fingers / 0.1 m, clipped to [0, 1]: 1 open, 0 closed",
        ),
        StateVariable(
            "obj_pos", (3,), "m", "first object's position (the task's puck, handle, button...)"
        ),
        StateVariable("obj_quat", (4,), "-", "first object's orientation, quaternion (w, x, y, z)"),
        StateVariable("obj2_pos", (3,), "m", "second object's position; zeros in one-object tasks"),
        StateVariable(
            "obj2_quat", (4,), "-", "second object's orientation, quaternion; zeros if none"
        ),
        StateVariable(
            "goal_pos",
            (3,),
            "m",
            "the task's target position (zeros in the observation of goal-hidden envs)",
        ),
        StateVariable(
            "tcp_center",
            (3,),
            "m",
            "midpoint between the two fingers, the point the env's rewards measure",
            privileged=True,
        ),
    )
    dense_reward_type: ClassVar[str | None] = "env"
    render_kwargs: ClassVar[Mapping[str, Any]] = {"width": 224, "height": 224}

    reach_weight: ClassVar[float] = 0.2
    """Share of progress from the fingers' approach to the first object."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.env_name = _env_name(env.unwrapped)
        task, goal, negative = TASKS[self.env_name]
        self.name = self.env_name.removesuffix("-v3").replace("-", "_")
        self.goal = goal
        self.negatives = (negative,)
        self.description = (
            f"Meta-World {self.env_name}: {task}. A 7-DoF Sawyer arm with a two-fingered "
            "gripper works at a table; each step the agent moves the hand by up to 1 cm along "
            "x, y and z (actions in [-1, 1] times 0.01 m), and the fourth action is the gripper "
            "effort (+1 closes, -1 opens). The 39-value observation is the hand position, the "
            "finger opening, two objects' positions and quaternions, the same 18 values one "
            "step earlier, and the goal position. Episodes last 500 steps; success is the "
            "task's own criterion (info['success'])."
        )
        if env.spec is not None and env.spec.id == "Meta-World/goal_hidden":
            self.state_variables = tuple(
                StateVariable(v.name, v.shape, v.units, v.doc, privileged=True)
                if v.name == "goal_pos"
                else v
                for v in self.state_variables
            )
        self._policy: Any = None
        self._start: tuple[float, float] | None = None
        self._step_info: tuple[int, Any, Mapping[str, Any]] | None = None

    @classmethod
    def wrap(cls, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        """Reseed on ``reset(seed=...)`` (:class:`_SeededReset`), and declare the observation
        space the observations are in: a Meta-World env computes ``observation_space`` at
        construction, before ``MT1``'s task (or ``goal_observable``'s ``__init__``) makes the
        goal observable, so it bounds the goal to ``[0, 0]`` (and the unwrapped env cannot
        reset before the wrapper's first reset sets a task). ``MT1``'s first task is set
        here; its first reset draws one as before (the draw consumes the same random numbers).
        """
        inner: Any = env.unwrapped
        if not inner._set_task_called:
            inner.set_task(env.get_wrapper_attr("tasks")[0])
        inner.observation_space = inner.sawyer_observation_space
        return _SeededReset(env)

    # --- the state -------------------------------------------------------------------------

    @contextmanager
    def _current(self) -> Iterator[Any]:
        """The unwrapped env, its positions up to date. Some resets set a joint without
        recomputing positions (``window-close-v3``'s window is 20 cm off in the reset
        observation), so until the first step the env's data is read from a recomputed copy,
        leaving the simulation itself untouched."""
        env: Any = self.env.unwrapped
        if env.curr_path_length > 0:
            yield env
            return
        import mujoco

        data = env.data
        env.data = copy.copy(data)
        mujoco.mj_forward(env.model, env.data)
        try:
            yield env
        finally:
            env.data = data

    @staticmethod
    def _observation(env: Any, true_goal: bool) -> np.ndarray:
        """The observation the env returns in its current state (its previous-frame half
        equals the current one after every step and reset), clipped as ``step`` clips it; with
        ``true_goal``, unclipped and with the goal even where the env hides it."""
        current = env._get_curr_obs_combined_no_goal()
        goal = np.asarray(env._get_pos_goal(), dtype=np.float64)
        if env._partially_observable and not true_goal:
            goal = np.zeros_like(goal)
        obs = np.hstack((current, current, goal))
        if true_goal:
            return obs
        space = env.sawyer_observation_space
        return np.clip(obs, space.low, space.high)

    def _measure(self) -> tuple[bool, float, float]:
        """``(success, d, h)`` of the current state: the task's success and success distance
        from its ``evaluate_state`` (zero action: no task's success or distances depend on
        it), and the fingers-to-object distance. ``evaluate_state`` may cache values on the
        env (``bin-picking-v3``: its first reward margin), so the env's attributes are
        restored after."""
        with self._current() as env:
            attrs = vars(env)
            saved = dict(attrs)
            try:
                _, info = env.evaluate_state(
                    self._observation(env, False), np.zeros(4, dtype=np.float32)
                )
                d = _success_distance(self.env_name, env, info)
                h = float(np.linalg.norm(env.tcp_center - env._get_pos_objects()[:3]))
            finally:
                for key in set(attrs) - set(saved):
                    del attrs[key]
                attrs.update(saved)
        return bool(info["success"] > 0.5), d, h

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        _, d, h = self._measure()
        self._start = (d, h)

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        if "success" in info:
            # A step's info is the task's evaluate_state of the new state: progress reuses it
            # for this state (keyed by the step count and the episode's goal array).
            env: Any = self.env.unwrapped
            self._step_info = (env.curr_path_length, env._target_pos, info)
            return bool(info["success"] > 0.5)
        return self._measure()[0]

    def _measure_step(self) -> tuple[bool, float, float]:
        """:meth:`_measure`, from the last step's info when it is this state's."""
        env: Any = self.env.unwrapped
        last = self._step_info
        if last is None or last[0] != env.curr_path_length or last[1] is not env._target_pos:
            return self._measure()
        info = last[2]
        d = _success_distance(self.env_name, env, info)
        h = 0.0
        if self.env_name not in _REACH_TASKS:  # no object to approach: progress ignores h
            h = float(np.linalg.norm(env.tcp_center - env._get_pos_objects()[:3]))
        return bool(info["success"] > 0.5), d, h

    def progress(self) -> float:
        if self._start is None or self.env.unwrapped.curr_path_length == 0:  # type: ignore[attr-defined]
            self.on_reset(None, {})
        assert self._start is not None
        success, d, h = self._measure_step()
        if success:
            return 1.0
        weight = None if self.env_name in _REACH_TASKS else self.reach_weight
        return distance_progress(self._start, d, h, RADIUS[self.env_name], weight)

    def state_dict(self) -> dict[str, np.ndarray]:
        with self._current() as env:
            obs = self._observation(env, True)
            tcp = np.array(env.tcp_center, dtype=np.float64)
        return {
            "hand_pos": obs[0:3].copy(),
            "gripper_distance": np.asarray(obs[3], dtype=np.float64),
            "obj_pos": obs[4:7].copy(),
            "obj_quat": obs[7:11].copy(),
            "obj2_pos": obs[11:14].copy(),
            "obj2_quat": obs[14:18].copy(),
            "goal_pos": obs[36:39].copy(),
            "tcp_center": tcp,
        }

    # --- the expert ------------------------------------------------------------------------

    def expert_action(self, obs: Any) -> np.ndarray:
        if self._policy is None:
            from metaworld.policies import ENV_POLICY_MAP

            policy: Any = ENV_POLICY_MAP[self.env_name]
            self._policy = policy()
        with warnings.catch_warnings():
            # metaworld.policies.policy.move warns whenever its gain saturates an action.
            warnings.simplefilter("ignore", UserWarning)
            with self._current() as env:
                action = self._policy.get_action(self._observation(env, True))
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def idle_action(self) -> np.ndarray:
        return np.zeros(4, dtype=np.float32)


def _env_name(env: Any) -> str:
    """The Meta-World name (``"reach-v3"``) of an env, from its class (goal-hidden and
    goal-observable envs subclass the task's class)."""
    from metaworld.env_dict import ENV_CLS_MAP

    names = {cls: name for name, cls in ENV_CLS_MAP.items()}
    for cls in type(env).__mro__:
        if cls in names:
            return names[cls]
    raise TypeError(
        f"{type(env).__name__} is not one of Meta-World's 50 task envs; Meta-World ids that "
        "make vector envs (MT10, ML1-train, ...) have no single task"
    )
