"""Sparse-reward gridworlds in pure numpy, with an exact tabular model and an optimal expert.

One env class, :class:`GridWorldEnv`, with the layout chosen by :class:`GridWorldConfig`:
an empty room, Sutton's four rooms, Minigrid's door-and-key room and a lava crossing. The
dynamics follow Minigrid (Chevalier-Boisvert et al. 2023): a directed agent turns, moves
forward, picks up the key in front of it and unlocks the door in front of it.

A layout is immutable ``bytes`` of cell codes plus a few object positions; the state within an
episode is four integers ``(x, y, direction, stage)``. Everything that needs the whole state
graph (the successor table, shortest distances to the goal, the expert, the vector
observations) is computed once per layout and cached, so :meth:`GridWorldEnv.step` is a few
integer operations and table look-ups, and :meth:`GridWorldEnv.tabular` is exact by
construction: it tabulates the same transition and reward functions ``step`` calls.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from rewardlab.envs.core import StateVariable, Task, TaskEnv, resolve_config

__all__ = [
    "ACTION_NAMES",
    "GridWorldConfig",
    "GridWorldEnv",
    "Layout",
    "TabularMDP",
    "generate_layout",
]

# Cell codes of Layout.cells.
FLOOR, WALL, GOAL, LAVA, KEY, DOOR = range(6)
# Extra code used only for drawing.
_DOOR_OPEN = 6

TURN_LEFT, TURN_RIGHT, FORWARD, PICKUP, TOGGLE = range(5)
ACTION_NAMES = ("turn_left", "turn_right", "forward", "pickup", "toggle")

# Minigrid's direction convention: 0 = east (+x), then clockwise; y grows downwards.
_DX = (1, 0, -1, 0)
_DY = (0, 1, 0, -1)

# Stages of the key-door task (layouts without a key only have stage 0).
NO_KEY, HAS_KEY, DOOR_OPEN = 0, 1, 2

LAYOUTS = ("empty", "four_rooms", "key_door", "lava_crossing")
_DEFAULT_SIZE = {"empty": 8, "four_rooms": 13, "key_door": 8, "lava_crossing": 9}
_MIN_SIZE = {"empty": 4, "four_rooms": 7, "key_door": 5, "lava_crossing": 5}
_MAX_SIZE = 32

# Dense reward weights (see GridWorldEnv's docstring).
_W_KEY, _W_DOOR, _W_APPROACH, _W_LAVA, _W_STEP = 0.2, 0.2, 0.05, -1.0, -0.01

_OBS_DIM = 17


@dataclass(frozen=True)
class GridWorldConfig:
    """Everything that defines a gridworld MDP and its observation.

    Attributes:
        layout: ``"empty"``, ``"four_rooms"``, ``"key_door"`` or ``"lava_crossing"``.
        size: Side of the square grid in cells, outer walls included, in ``[min, 32]`` where
            min is 4 (empty), 7 (four rooms), 5 (key-door, lava crossing); None picks the
            layout's default (8, 13, 8, 9).
        randomize_layout: Draw the layout anew at every reset (goal cell in four rooms;
            wall column, door row and key cell in key-door; river orientation, position and
            gap in lava crossing). False fixes the canonical layout. The empty room has
            nothing to randomize. The start direction is random in every case.
        reward_type: ``"sparse"`` (1 on reaching the goal) or ``"dense"`` (hand-designed
            components, see :class:`GridWorldEnv`).
        obs_type: ``"vector"`` (17 float32 features) or ``"image"`` (uint8 top-down image).
        obs_tile_size: Pixels per cell of the ``"image"`` observation, in ``[1, 32]``.
        render_width: Width in pixels of ``render()``'s frames, at least ``size``.
        render_height: Height in pixels of ``render()``'s frames, at least ``size``.
    """

    layout: str = "empty"
    size: int | None = None
    randomize_layout: bool = True
    reward_type: str = "sparse"
    obs_type: str = "vector"
    obs_tile_size: int = 8
    render_width: int = 224
    render_height: int = 224

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.size is not None:
            lo = _MIN_SIZE[self.layout]
            if not _is_int(self.size) or not lo <= self.size <= _MAX_SIZE:
                raise ValueError(
                    f"size of a {self.layout!r} layout must be an int in [{lo}, {_MAX_SIZE}] "
                    f"or None, got {self.size!r}"
                )
        if not isinstance(self.randomize_layout, bool):
            raise ValueError(f"randomize_layout must be a bool, got {self.randomize_layout!r}")
        if self.reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {self.reward_type!r}")
        if self.obs_type not in ("vector", "image"):
            raise ValueError(f"obs_type must be 'vector' or 'image', got {self.obs_type!r}")
        if not _is_int(self.obs_tile_size) or not 1 <= self.obs_tile_size <= 32:
            raise ValueError(f"obs_tile_size must be an int in [1, 32], got {self.obs_tile_size!r}")
        for name in ("render_width", "render_height"):
            value = getattr(self, name)
            if not _is_int(value) or not self.grid_size <= value <= 4096:
                raise ValueError(
                    f"{name} must be an int in [{self.grid_size}, 4096] (at least one pixel "
                    f"per cell), got {value!r}"
                )

    @property
    def grid_size(self) -> int:
        """The grid side in cells, outer walls included (``size`` or the layout's default)."""
        return _DEFAULT_SIZE[self.layout] if self.size is None else self.size


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --- layouts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One episode's static grid: hashable, so everything derived from it can be cached.

    Attributes:
        name: The layout family (``"key_door"``).
        width: Cells per row, outer walls included.
        height: Rows, outer walls included.
        cells: Row-major cell codes (``FLOOR``, ``WALL``, ``GOAL``, ``LAVA``, ``KEY``, ``DOOR``);
            the key and door cells keep their codes after pickup and unlocking, the stage
            says whether they block.
        goal: Goal cell ``(x, y)``.
        key: Key cell, or None.
        door: Door cell, or None.
        gap: The one floor cell of the lava river, or None.
        river_vertical: Whether the lava river runs along a column.
        starts: Possible start poses ``(x, y, direction)``, drawn uniformly at reset.
    """

    name: str
    width: int
    height: int
    cells: bytes
    goal: tuple[int, int]
    key: tuple[int, int] | None = None
    door: tuple[int, int] | None = None
    gap: tuple[int, int] | None = None
    river_vertical: bool = False
    starts: tuple[tuple[int, int, int], ...] = ()

    def grid(self) -> np.ndarray:
        """Cell codes as a ``(height, width)`` uint8 array (a copy)."""
        return np.frombuffer(self.cells, dtype=np.uint8).reshape(self.height, self.width).copy()

    @property
    def n_stages(self) -> int:
        """3 with a key (no key, key carried, door open), else 1."""
        return 3 if self.key is not None else 1


def generate_layout(config: GridWorldConfig, rng: np.random.Generator) -> Layout:
    """Draw one episode's layout for ``config`` from ``rng`` (no draw if not randomized).

    The agent always starts in the top-left cell ``(1, 1)`` facing a uniformly drawn
    direction; the goal lies in or near the opposite corner.
    """
    n, name, rand = config.grid_size, config.layout, config.randomize_layout
    grid = np.full((n, n), FLOOR, dtype=np.uint8)
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    goal = (n - 2, n - 2)
    key = door = gap = None
    vertical = False
    if name == "four_rooms":
        # Sutton, Precup & Singh (1999): the horizontal walls are offset by one row.
        mid = n // 2
        grid[:, mid] = WALL
        grid[mid, :mid] = WALL
        grid[mid + 1, mid:] = WALL
        grid[mid // 2, mid] = FLOOR
        grid[(mid + n) // 2, mid] = FLOOR
        grid[mid, mid // 2] = FLOOR
        grid[mid + 1, (mid + n - 1) // 2] = FLOOR
        if rand:
            goal = (int(rng.integers(mid + 1, n - 1)), int(rng.integers(mid + 2, n - 1)))
    elif name == "key_door":
        # Minigrid's DoorKey: a wall splits the room, the key lies in the left part.
        if rand:
            split, door_y = int(rng.integers(2, n - 2)), int(rng.integers(1, n - 1))
            free = [(x, y) for y in range(1, n - 1) for x in range(1, split) if (x, y) != (1, 1)]
            key = free[int(rng.integers(len(free)))]
        else:
            split, door_y, key = n // 2, (n - 1) // 2, (1, n - 2)
        grid[:, split] = WALL
        door = (split, door_y)
        grid[door_y, split] = DOOR
        grid[key[1], key[0]] = KEY
    elif name == "lava_crossing":
        # Minigrid's LavaCrossing with one river: rivers on even rows/columns, one gap.
        if rand:
            vertical = bool(rng.integers(2))
            line = int(rng.choice(np.arange(2, n - 2, 2)))
            along = int(rng.integers(1, n - 1))
        else:
            vertical, line, along = True, 2 * (n // 4), n // 2
        if vertical:
            grid[1:-1, line] = LAVA
            gap = (line, along)
        else:
            grid[line, 1:-1] = LAVA
            gap = (along, line)
        grid[gap[1], gap[0]] = FLOOR
    grid[goal[1], goal[0]] = GOAL
    return Layout(
        name=name,
        width=n,
        height=n,
        cells=grid.tobytes(),
        goal=goal,
        key=key,
        door=door,
        gap=gap,
        river_vertical=vertical,
        starts=tuple((1, 1, d) for d in range(4)),
    )


# --- dynamics and reward: the one source of truth for step() and tabular() ---------------------

_State = tuple[int, int, int, int]  # x, y, direction, stage


def _transition(
    cells: bytes, width: int, x: int, y: int, d: int, stage: int, action: int
) -> _State:
    """Next ``(x, y, direction, stage)`` from a non-terminal state (deterministic)."""
    if action == TURN_LEFT:
        return x, y, (d - 1) & 3, stage
    if action == TURN_RIGHT:
        return x, y, (d + 1) & 3, stage
    fx, fy = x + _DX[d], y + _DY[d]
    front = cells[fy * width + fx]  # in range: the outer walls stop the agent first
    if action == FORWARD:
        if front == WALL or (front == KEY and stage == NO_KEY) or (front == DOOR and stage != 2):
            return x, y, d, stage
        return fx, fy, d, stage
    if action == PICKUP and front == KEY and stage == NO_KEY:
        return x, y, d, HAS_KEY
    if action == TOGGLE and front == DOOR and stage == HAS_KEY:
        return x, y, d, DOOR_OPEN
    return x, y, d, stage


def _reward_names(layout: Layout, reward_type: str) -> tuple[str, ...]:
    if reward_type == "sparse":
        return ("success",)
    key = ("key_pickup", "door_open") if layout.key is not None else ()
    lava = ("lava",) if layout.gap is not None else ()
    return ("success", *key, "approach", *lava, "step_penalty")


def _reward_terms(
    layout: Layout, reward_type: str, state: _State, nxt: _State
) -> tuple[float, ...]:
    """Reward components of the transition ``state -> nxt``, in ``_reward_names`` order."""
    x2, y2, _, stage2 = nxt
    code = layout.cells[y2 * layout.width + x2]
    success = 1.0 if code == GOAL else 0.0
    if reward_type == "sparse":
        return (success,)
    x, y, _, stage = state
    terms = [success]
    if layout.key is not None:
        terms.append(_W_KEY if stage == NO_KEY and stage2 == HAS_KEY else 0.0)
        terms.append(_W_DOOR if stage == HAS_KEY and stage2 == DOOR_OPEN else 0.0)
    # The sub-goal is the one of the state left, so the term is a difference of a function of
    # the (state, sub-goal) pair and the reward stays Markov.
    if layout.key is not None and stage == NO_KEY:
        tx, ty = layout.key
    elif layout.door is not None and stage == HAS_KEY:
        tx, ty = layout.door
    else:
        tx, ty = layout.goal
    before = abs(x - tx) + abs(y - ty)
    after = abs(x2 - tx) + abs(y2 - ty)
    terms.append(_W_APPROACH * (before - after))
    if layout.gap is not None:
        terms.append(_W_LAVA if code == LAVA else 0.0)
    terms.append(_W_STEP)
    return tuple(terms)


@dataclass(frozen=True, eq=False)
class _LayoutModel:
    """Everything derived from one layout's state graph (built once, cached)."""

    layout: Layout
    states: np.ndarray  # (S, 4) int64: x, y, direction, stage
    index: list[int]  # flat ((y * W + x) * 4 + d) * K + stage -> state index, -1 if invalid
    succ: np.ndarray  # (S, A) int64 successor state index
    terminal: np.ndarray  # (S,) bool
    progress: list[float]  # (S,) max(0, 1 - dist / max dist over the start states)
    expert: list[int]  # (S,) first action on a shortest path
    initial: np.ndarray  # (S,) float64 uniform over the start poses
    vector_obs: np.ndarray  # (S, 17) float32


# Bounded: a size-32 key-door model holds a few MB, and randomized layouts rarely repeat.
@functools.lru_cache(maxsize=256)
def _layout_model(layout: Layout) -> _LayoutModel:
    w, h, k, cells = layout.width, layout.height, layout.n_stages, layout.cells
    index = [-1] * (h * w * 4 * k)
    states: list[_State] = []
    for stage in range(k):
        for y in range(h):
            for x in range(w):
                code = cells[y * w + x]
                if (
                    code == WALL
                    or (code == KEY and stage == NO_KEY)
                    or (code == DOOR and stage < 2)
                ):
                    continue  # the agent can never stand here
                for d in range(4):
                    index[((y * w + x) * 4 + d) * k + stage] = len(states)
                    states.append((x, y, d, stage))
    n_states = len(states)
    arr = np.array(states, dtype=np.int64).reshape(-1, 4)
    grid = np.frombuffer(cells, dtype=np.uint8).reshape(h, w)
    codes = grid[arr[:, 1], arr[:, 0]]
    terminal = (codes == GOAL) | (codes == LAVA)
    succ = _successor_table(grid, arr, np.array(index), k)
    succ[terminal] = np.flatnonzero(terminal)[:, None]
    dist = np.where(codes == GOAL, 0.0, np.inf)
    while True:  # Bellman-Ford on unit costs; terminates after at most diameter sweeps
        new = np.where(terminal, dist, np.minimum(dist, 1.0 + dist[succ].min(axis=1)))
        if np.array_equal(new, dist):
            break
        dist = new
    start_ids = [index[((y * w + x) * 4 + d) * k] for x, y, d in layout.starts]
    initial = np.zeros(n_states)
    np.add.at(initial, start_ids, 1.0 / len(start_ids))
    progress = np.clip(1.0 - dist / dist[start_ids].max(), 0.0, 1.0)
    expert = np.argmin(dist[succ], axis=1)
    return _LayoutModel(
        layout=layout,
        states=arr,
        index=index,
        succ=succ,
        terminal=terminal,
        progress=[float(p) for p in progress],
        expert=[int(a) for a in expert],
        initial=initial,
        vector_obs=_vector_obs(layout, arr),
    )


def _successor_table(
    grid: np.ndarray, states: np.ndarray, index: np.ndarray, n_stages: int
) -> np.ndarray:
    """``(S, A)`` successor indices of all states at once: :func:`_transition`, vectorized.

    A second implementation of the dynamics on purpose: the tests check it against the
    scalar one ``step()`` runs, for every state and action.
    """
    x, y, d, stage = states.T
    fx, fy = x + np.take(_DX, d), y + np.take(_DY, d)
    front = grid[fy, fx]
    blocked = (
        (front == WALL) | ((front == KEY) & (stage == NO_KEY)) | ((front == DOOR) & (stage != 2))
    )
    moves = [
        (x, y, (d - 1) & 3, stage),
        (x, y, (d + 1) & 3, stage),
        (np.where(blocked, x, fx), np.where(blocked, y, fy), d, stage),
        (x, y, d, np.where((front == KEY) & (stage == NO_KEY), HAS_KEY, stage)),
        (x, y, d, np.where((front == DOOR) & (stage == HAS_KEY), DOOR_OPEN, stage)),
    ]
    width = grid.shape[1]
    return np.stack(
        [index[((y2 * width + x2) * 4 + d2) * n_stages + s2] for x2, y2, d2, s2 in moves], axis=1
    )


def _vector_obs(layout: Layout, states: np.ndarray) -> np.ndarray:
    sx, sy = 1.0 / (layout.width - 1), 1.0 / (layout.height - 1)

    def pos(p: tuple[int, int] | None) -> list[float]:
        return [-1.0, -1.0] if p is None else [p[0] * sx, p[1] * sy]

    obs = np.zeros((len(states), _OBS_DIM), dtype=np.float32)
    obs[:, 0] = states[:, 0] * sx
    obs[:, 1] = states[:, 1] * sy
    obs[np.arange(len(states)), 2 + states[:, 2]] = 1.0
    obs[:, 6] = states[:, 3] >= HAS_KEY
    obs[:, 7] = states[:, 3] == DOOR_OPEN
    obs[:, 8:16] = pos(layout.goal) + pos(layout.key) + pos(layout.door) + pos(layout.gap)
    obs[:, 16] = float(layout.river_vertical)
    return obs


# --- tabular model ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """The exact finite MDP of one layout, as dense arrays.

    Memory is ``O(S^2 A)``: about 7 MB for the 13x13 four rooms (416 states).

    Attributes:
        P: ``(S, A, S)`` transition probabilities (0 or 1: the dynamics are deterministic).
        R: ``(S, A, S)`` rewards of the env's ``reward_type``, equal to ``step()``'s.
        terminal: ``(S,)`` True for goal and lava states, absorbing with zero reward.
        initial: ``(S,)`` the distribution of the episode's first state given its layout.
        states: ``(S, 4)`` int ``(x, y, direction, stage)`` of each state index.
        next_state: ``(S, A)`` the successor index (``P[s, a]`` is one-hot at it).
        reward_type: ``"sparse"`` or ``"dense"``.
    """

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    initial: np.ndarray
    states: np.ndarray
    next_state: np.ndarray
    reward_type: str

    def value_iteration(
        self, gamma: float, tol: float = 1e-12, max_iter: int = 100_000
    ) -> tuple[np.ndarray, np.ndarray]:
        """Optimal ``(V, Q)`` of shapes ``(S,)`` and ``(S, A)`` for discount ``gamma``.

        Raises:
            ValueError: If ``gamma`` is not in ``[0, 1)``.
            RuntimeError: If the values do not converge within ``max_iter`` sweeps.
        """
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma!r}")
        expected_r = np.einsum("sat,sat->sa", self.P, self.R)
        v = np.zeros(len(self.terminal))
        for _ in range(max_iter):
            q = expected_r + gamma * np.einsum("sat,t->sa", self.P, v)
            v_new = q.max(axis=1)
            if np.max(np.abs(v_new - v)) <= tol:
                return v_new, q
            v = v_new
        raise RuntimeError(f"value iteration did not converge in {max_iter} sweeps")


# --- rendering --------------------------------------------------------------------------------

_PALETTE = np.array(
    [
        (232, 232, 232),  # FLOOR: light grey
        (64, 64, 64),  # WALL: dark grey
        (0, 190, 60),  # GOAL: green
        (255, 90, 0),  # LAVA: orange
        (232, 232, 232),  # KEY: floor under the key sprite
        (150, 40, 220),  # DOOR (closed): purple
        (232, 232, 232),  # door open: floor inside a purple frame
    ],
    dtype=np.uint8,
)
_AGENT_RGB = np.array((0, 80, 255), dtype=np.uint8)  # blue
_KEY_RGB = np.array((255, 205, 0), dtype=np.uint8)  # yellow
_DOOR_RGB = _PALETTE[DOOR]


@functools.lru_cache(maxsize=512)
def _sprite(kind: str, h: int, w: int, d: int = 0) -> np.ndarray:
    """Boolean ``(h, w)`` mask of a sprite drawn in a tile (``d``: the agent's direction)."""
    v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    # Rotate into the east-facing frame: the sprites are symmetric about v = 0.5.
    u, v = ((u, v), (v, u), (1 - u, v), (1 - v, u))[d]
    if kind == "agent":  # Minigrid's triangle, pointing in the agent's direction
        mask = (u >= 0.12) & (np.abs(v - 0.5) <= 0.31 * (0.88 - u) / 0.76)
    elif kind == "carried_key":
        mask = (np.abs(u - 0.4) <= 0.1) & (np.abs(v - 0.5) <= 0.08)
    elif kind == "key":
        ring = (u - 0.3) ** 2 + (v - 0.5) ** 2 <= 0.17**2
        shaft = (u >= 0.4) & (u <= 0.86) & (np.abs(v - 0.5) <= 0.06)
        teeth = (np.abs(u - 0.72) <= 0.05) & (v >= 0.5) & (v <= 0.7)
        mask = ring | shaft | teeth
    else:  # "door_frame"
        t = max(1.0 / min(h, w), 0.12)
        mask = (u < t) | (u > 1 - t) | (v < t) | (v > 1 - t)
    return np.ascontiguousarray(mask)


class _Renderer:
    """Top-down frames of one layout at a fixed pixel size; static parts drawn once."""

    def __init__(self, layout: Layout, height: int, width: int) -> None:
        self.layout = layout
        # Pixel p belongs to cell floor(p * cells / pixels); cell c spans edges[c]:edges[c + 1].
        self.y_edges = [-(-c * height // layout.height) for c in range(layout.height + 1)]
        self.x_edges = [-(-c * width // layout.width) for c in range(layout.width + 1)]
        self.rows = (np.arange(height) * layout.height) // height
        self.cols = (np.arange(width) * layout.width) // width
        self._base: dict[int, np.ndarray] = {}

    def _tile(self, frame: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
        x, y = cell
        return frame[self.y_edges[y] : self.y_edges[y + 1], self.x_edges[x] : self.x_edges[x + 1]]

    def _background(self, stage: int) -> np.ndarray:
        layout = self.layout
        codes = layout.grid()
        if layout.key is not None and stage != NO_KEY:
            codes[layout.key[1], layout.key[0]] = FLOOR
        if layout.door is not None and stage == DOOR_OPEN:
            codes[layout.door[1], layout.door[0]] = _DOOR_OPEN
        frame = _PALETTE[codes[self.rows[:, None], self.cols[None, :]]]
        if len(self.rows) >= 4 * layout.height and len(self.cols) >= 4 * layout.width:
            # Grid lines: darken the first pixel row and column of every cell.
            frame[self.y_edges[:-1], :] = frame[self.y_edges[:-1], :] * 0.8
            frame[:, self.x_edges[:-1]] = frame[:, self.x_edges[:-1]] * 0.8
        if layout.key is not None and stage == NO_KEY:
            tile = self._tile(frame, layout.key)
            tile[_sprite("key", *tile.shape[:2])] = _KEY_RGB
        if layout.door is not None and stage == DOOR_OPEN:
            tile = self._tile(frame, layout.door)
            tile[_sprite("door_frame", *tile.shape[:2])] = _DOOR_RGB
        return frame

    def frame(self, x: int, y: int, d: int, stage: int) -> np.ndarray:
        if stage not in self._base:
            self._base[stage] = self._background(stage)
        frame = self._base[stage].copy()
        tile = self._tile(frame, (x, y))
        tile[_sprite("agent", tile.shape[0], tile.shape[1], d)] = _AGENT_RGB
        if stage != NO_KEY:
            tile[_sprite("carried_key", tile.shape[0], tile.shape[1], d)] = _KEY_RGB
        return frame


# --- the env ----------------------------------------------------------------------------------

_TEXTS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "empty": (
        "reach_goal",
        "a blue triangle on the green square in a grey grid room",
        "a blue triangle and a green square in a grey grid room",
        ("a blue triangle far from the green square in a grey grid room",),
    ),
    "four_rooms": (
        "four_rooms",
        "a blue triangle on the green square in a grid of four rooms",
        "a blue triangle and a green square in a grid of four rooms",
        ("a blue triangle in the top-left room, far from the green square",),
    ),
    "key_door": (
        "key_door",
        "a blue triangle on the green square beyond an open purple door",
        "a blue triangle, a yellow key and a closed purple door in a grid room",
        (
            "a blue triangle next to a closed purple door",
            "a yellow key lying on the floor far from the blue triangle",
        ),
    ),
    "lava_crossing": (
        "lava_crossing",
        "a blue triangle on the green square across a river of orange lava",
        "a blue triangle and a green square separated by a river of orange lava",
        ("a blue triangle in the orange lava",),
    ),
}


class GridWorldEnv(TaskEnv[GridWorldConfig]):
    """Minigrid-style gridworld with a sparse goal reward, an exact tabular model and an expert.

    Layouts (``layout`` argument; the agent starts in the top-left cell, facing a random
    direction, the goal is in the bottom-right part):

    - ``"empty"``: one room, goal in the opposite corner.
    - ``"four_rooms"``: Sutton et al.'s four rooms joined by fixed doorways, goal on a random
      cell of the bottom-right room.
    - ``"key_door"``: Minigrid's DoorKey: a wall at a random column splits the room; pick up
      the yellow key, unlock the purple door, reach the goal behind it.
    - ``"lava_crossing"``: a river of lava along a random even row or column, crossed by a
      single gap; entering lava ends the episode without success.

    ## Action Space

    ``Discrete(5)``, Minigrid's: 0 turn left, 1 turn right, 2 move forward (blocked by walls,
    the key and the closed door), 3 pick up the key in front, 4 unlock the door in front
    (needs the key; an open door stays open). Minigrid's ``drop`` and ``done`` are left out.

    ## Observation Space

    ``obs_type="vector"``: ``Box(-1, 1, (17,), float32)``: agent ``x, y`` divided by
    ``size - 1``; direction one-hot (east, south, west, north); carrying key; door open; goal,
    key, door and lava-gap ``x, y`` (divided by ``size - 1``, ``-1`` when the layout has none);
    1 if the lava river is vertical. Together with the layout family this determines the
    state, so the task is fully observable.

    ``obs_type="image"``: ``Box(0, 255, (size * obs_tile_size, size * obs_tile_size, 3),
    uint8)``, the top-down frame ``render()`` draws.

    ## Rewards

    ``reward_type="sparse"``: ``r = success`` with ``success = 1`` on entering the goal cell,
    in ``info["reward_success"]``. Minigrid pays ``1 - 0.9 t / T`` instead; that depends on
    the step counter ``t``, which is not part of the state, so this env pays a Markov reward:
    the tabular model is exact and potential-based shaping theory applies.

    ``reward_type="dense"``: a hand-designed reward, the sum of ``info["reward_<name>"]``:
    ``success`` (1 on entering the goal), ``key_pickup`` (0.2 on picking up the key),
    ``door_open`` (0.2 on unlocking the door), ``approach`` (0.05 times the decrease of the
    Manhattan distance to the current sub-goal: the key, then the door, then the goal, taken
    for the state left), ``lava`` (-1 on entering lava), ``step_penalty`` (-0.01 every step).
    Only the components a layout can produce are reported. Every component is a function of
    ``(s, s')``, so the dense reward is Markov too.

    ``info["progress"]`` is the ground-truth potential
    ``max(0, 1 - dist(s) / max_{s0} dist(s0))``: ``dist`` is the fewest actions from the
    state to the goal (through key and door; infinite in lava), the maximum runs over the
    layout's start states. It is 1 exactly on the goal and at most ``2 / max dist(s0)`` at
    reset (only the start direction varies).

    ## Episode End

    Terminated on entering the goal (``info["is_success"]`` True) or lava (False). Truncated
    only by the registered ``max_episode_steps``.

    ## Arguments

    ``gym.make("rewardlab/GridKeyDoor-v0", render_mode="rgb_array", **overrides)`` with the
    fields of :class:`GridWorldConfig` as overrides (or ``config=GridWorldConfig(...)``).

    ## Tabular model

    :meth:`tabular` returns the exact :class:`TabularMDP` of the current episode's layout;
    its ``initial`` is the distribution of the first state given that layout (uniform over
    the four start directions). :meth:`state_index` and :meth:`set_state_index` map between
    the simulator and the model's state indices.

    ## Version History

    - v0: initial release.

    Example:
        >>> import gymnasium as gym
        >>> import rewardlab
        >>> env = gym.make("rewardlab/GridKeyDoor-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["progress"] <= 0.2
        ((17,), True)
        >>> act = rewardlab.expert_policy(env)
        >>> done = False
        >>> while not done:
        ...     obs, reward, terminated, truncated, info = env.step(act(obs))
        ...     done = terminated or truncated
        >>> reward, info["is_success"], info["progress"]
        (1.0, True, 1.0)
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}
    dense_reward_type = "dense"

    def __init__(
        self, config: GridWorldConfig | None = None, render_mode: str | None = None, **kwargs: Any
    ) -> None:
        self.config = cfg = resolve_config(GridWorldConfig, config, kwargs)
        self._init_render_mode(render_mode)
        n = cfg.grid_size
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        if cfg.obs_type == "vector":
            self.observation_space: spaces.Box = spaces.Box(-1.0, 1.0, (_OBS_DIM,), np.float32)
        else:
            side = n * cfg.obs_tile_size
            self.observation_space = spaces.Box(0, 255, (side, side, 3), np.uint8)
        name, goal, baseline, negatives = _TEXTS[cfg.layout]
        hidden = cfg.obs_type == "vector"
        self.task = Task(
            name=name,
            goal=goal,
            baseline=baseline,
            negatives=negatives,
            state_variables=(
                StateVariable("agent_pos", (2,), "cells", "agent cell (x, y); y grows downwards"),
                StateVariable("agent_dir", (), "-", "0 east (+x), 1 south, 2 west, 3 north"),
                StateVariable("carrying_key", (), "bool", "the agent holds the key"),
                StateVariable("door_open", (), "bool", "the door has been unlocked"),
                StateVariable("goal_pos", (2,), "cells", "goal cell (x, y)"),
                StateVariable("key_pos", (2,), "cells", "key's cell before pickup, -1 if none"),
                StateVariable("door_pos", (2,), "cells", "door cell (x, y), -1 if none"),
                StateVariable("walls", (n, n), "bool", "wall cells indexed [y, x]", hidden),
                StateVariable("lava", (n, n), "bool", "lava cells indexed [y, x]", hidden),
            ),
            env=self,
        )
        self._model: _LayoutModel | None = None
        self._names: tuple[str, ...] = ()
        self._state = (0, 0, 0, 0)
        self._index = -1
        self._renderer: _Renderer | None = None
        self._obs_renderer: _Renderer | None = None

    # -- gym API --

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        layout = generate_layout(self.config, self.np_random)
        if self._model is None or layout != self._model.layout:
            self._model = _layout_model(layout)
            self._names = tuple(
                f"reward_{n}" for n in _reward_names(layout, self.config.reward_type)
            )
            self._renderer = self._obs_renderer = None
        x, y, d = layout.starts[int(self.np_random.integers(len(layout.starts)))]
        self._set_state((x, y, d, NO_KEY))
        return self._obs(), {"is_success": False, "progress": self.progress()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        model = self._require_model("step")
        layout = model.layout
        a = int(action)
        if not 0 <= a < 5:
            raise ValueError(f"action must be in [0, 5), got {action!r}")
        state = self._state
        if model.terminal[self._index]:
            # Absorbing with zero reward, as in tabular(): stepping on after `terminated`
            # must not pay the goal (or the lava penalty) again.
            nxt, terms = state, (0.0,) * len(self._names)
        else:
            nxt = _transition(layout.cells, layout.width, *state, a)
            terms = _reward_terms(layout, self.config.reward_type, state, nxt)
        self._set_state(nxt)
        code = layout.cells[nxt[1] * layout.width + nxt[0]]
        success = code == GOAL
        info: dict[str, Any] = dict(zip(self._names, terms, strict=True))
        info["is_success"] = success
        info["progress"] = model.progress[self._index]
        return self._obs(), float(sum(terms)), success or code == LAVA, False, info

    def render(self) -> np.ndarray:
        self._require_render_mode()
        layout, cfg = self._require_model("render").layout, self.config
        if self._renderer is None:
            self._renderer = _Renderer(layout, cfg.render_height, cfg.render_width)
        return self._renderer.frame(*self._state)

    # -- TaskEnv API --

    def progress(self) -> float:
        """Ground-truth potential ``max(0, 1 - dist(s) / max_s0 dist(s0))`` in ``[0, 1]``."""
        return self._require_model().progress[self._index]

    def state_dict(self) -> dict[str, np.ndarray]:
        layout = self._require_model().layout
        x, y, d, stage = self._state
        grid = layout.grid()
        none = (-1, -1)
        return {
            "agent_pos": np.array([x, y]),
            "agent_dir": np.array(d),
            "carrying_key": np.array(stage >= HAS_KEY),
            "door_open": np.array(stage == DOOR_OPEN),
            "goal_pos": np.array(layout.goal),
            "key_pos": np.array(layout.key or none),
            "door_pos": np.array(layout.door or none),
            "walls": grid == WALL,
            "lava": grid == LAVA,
        }

    def expert_action(self) -> int:
        """First action of a shortest path to the goal (optimal for the sparse reward)."""
        return self._require_model().expert[self._index]

    def idle_action(self) -> int:
        """An action that leaves the state unchanged (pick up or unlock with nothing in front,
        or forward into a wall); a turn (which changes only the direction) if there is none."""
        model = self._require_model()
        stay = np.flatnonzero(model.succ[self._index] == self._index)
        return int(stay[-1]) if len(stay) else 0

    # -- tabular model --

    def tabular(self) -> TabularMDP:
        """The exact MDP of the current episode's layout, with this env's reward type.

        ``initial`` is the first-state distribution of an episode given this layout (uniform
        over the start directions); terminal states are absorbing with zero reward.
        """
        model = self._require_model()
        layout, reward_type = model.layout, self.config.reward_type
        n_states, n_actions = model.succ.shape
        p = np.zeros((n_states, n_actions, n_states))
        r = np.zeros((n_states, n_actions, n_states))
        p[np.arange(n_states)[:, None], np.arange(n_actions), model.succ] = 1.0
        states: list[_State] = [tuple(s) for s in model.states.tolist()]
        for s in np.flatnonzero(~model.terminal):
            for a, t in enumerate(model.succ[s]):
                r[s, a, t] = sum(_reward_terms(layout, reward_type, states[s], states[t]))
        return TabularMDP(
            P=p,
            R=r,
            terminal=model.terminal.copy(),
            initial=model.initial.copy(),
            states=model.states.copy(),
            next_state=model.succ.copy(),
            reward_type=reward_type,
        )

    def state_index(self) -> int:
        """Index of the current state in :meth:`tabular`'s arrays."""
        self._require_model()
        return self._index

    def set_state_index(self, index: int) -> np.ndarray:
        """Put the agent in state ``index`` of the current layout; returns its observation."""
        model = self._require_model()
        if not 0 <= index < len(model.states):
            raise ValueError(f"index must be in [0, {len(model.states)}), got {index!r}")
        self._set_state(tuple(int(v) for v in model.states[index]))  # type: ignore[arg-type]
        return self._obs()

    @property
    def layout(self) -> Layout:
        """The current episode's layout."""
        return self._require_model().layout

    # -- internals --

    def _set_state(self, state: _State) -> None:
        model = self._require_model()
        x, y, d, stage = state
        self._state = state
        width, n_stages = model.layout.width, model.layout.n_stages
        self._index = model.index[((y * width + x) * 4 + d) * n_stages + stage]

    def _obs(self) -> np.ndarray:
        model = self._require_model()
        if self.config.obs_type == "vector":
            return model.vector_obs[self._index].copy()
        if self._obs_renderer is None:
            self._obs_renderer = _Renderer(model.layout, *self.observation_space.shape[:2])
        return self._obs_renderer.frame(*self._state)

    def _require_model(self, before: str = "") -> _LayoutModel:
        if self._model is None:
            if before:
                raise RuntimeError(f"call reset() before {before}()")
            raise RuntimeError("call reset() first: the layout is drawn at reset")
        return self._model
