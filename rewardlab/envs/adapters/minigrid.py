"""Minigrid: one task for every ``MiniGrid-*`` id, read from the unwrapped ``MiniGridEnv``.

Minigrid (Chevalier-Boisvert et al., 2023, https://minigrid.farama.org) pays
``1 - 0.9 * step_count / max_steps`` once, when the mission is accomplished, and 0 otherwise.
Which state accomplishes it differs by env class; :class:`MinigridTask` mirrors each class's
``step`` (minigrid 3.2) from the state alone:

========================================  ==================================================
Env classes                               Success (the state in which the env pays)
========================================  ==================================================
Empty, DoorKey, FourRooms, Crossing       the agent stands on a green goal square
(Lava/Simple), LavaGap, MultiRoom,        (``MiniGridEnv.step``: moving onto a goal
DistShift, LockedRoom, DynamicObstacles   terminates with the reward); any other
and any other ``MiniGridEnv``             ``MiniGridEnv`` is assumed to pay only there
KeyCorridor, UnlockPickup,                the agent carries ``env.obj`` (their ``step``:
BlockedUnlockPickup, ObstructedMaze       ``pickup`` while carrying ``self.obj``)
Unlock                                    ``env.door`` is open (``toggle`` opening it)
Fetch                                     the agent carries an object of ``targetType`` and
                                          ``targetColor`` (carrying any other fails)
PutNear                                   the object to move lies within one cell (8-neighbour)
                                          of ``target_pos`` (dropping it elsewhere fails)
Memory                                    the agent stands on ``success_pos``
RedBlueDoors                              both doors are open (opening blue first fails)
========================================  ==================================================

GoToDoor and GoToObject pay for the ``done`` action next to the target, an action the state
does not record, and Playground has no task: the adapter refuses them (register your own task
with :func:`rewardlab.register_task` if you need them). Episodes ending in lava, in a failing
pick-up, drop or door, or by the time limit are never successes.

Progress and the expert share one planner. From the current grid it derives the stages the
mission still needs (fetch the key of a locked door, possibly from a box, open the door, move
a blocking ball out of the way, drop what the hands hold before the next pick-up, then the
mission's own step) and computes, by Dijkstra over ``(cell, direction)`` per stage, the
number of actions a shortest plan through those stages still takes: turns and moves cost 1,
walking through a closed door 2 (toggle, forward); lava, walls, goal squares before the last
stage and objects are impassable. ``progress = 1 - cost / cost at the episode's first call``,
clipped to ``[0, 1]``: 0 at the start, exactly 1 at success, 0 in a failure state (lava, a
wrong pick-up, drop or door) and where no plan exists. It is a function of the state (the
grid, what the agent holds, where it stands and faces). Where the plan is exact, progress
after ``t`` of the expert's ``T`` actions is ``t / T``: Empty, DoorKey, FourRooms, the
Crossings, LavaGap, MultiRoom, DistShift, Memory, Unlock, UnlockPickup, BlockedUnlockPickup,
Fetch, PutNear, RedBlueDoors, ObstructedMaze-1Dl/1Dlh/2Dl/2Dlh. Elsewhere it is an estimate:
a closed door the plan walks through twice counts twice until opened (KeyCorridor,
LockedRoom: progress jumps there), the stages of the larger ObstructedMazes are ordered
greedily (the first door or blocker that works, so a later state may find a shorter order
and progress may dip), and DynamicObstacles' balls are left out (progress would jitter with
them; its collision, which ends the episode with -1, leaves no trace in the state).

The expert takes the first action of that plan (``left``, ``right``, ``forward``, ``pickup``,
``drop``, ``toggle``) and keeps to the plan it started (a greedy re-derivation could flip
between two stage orders). It solves every supported id (ObstructedMaze-v0's layouts whose
key the blocking ball overwrote, a bug v1 fixed, have no plan); it raises ``ValueError``
where no plan exists, idles in a success state, and on DynamicObstacles, whose balls can
wall it in, avoids them and turns left to wait for them to move. ``idle_action`` is
``done`` (a no-op in every supported class), or ``left`` for DynamicObstacles, whose three
actions have no no-op (walking into a wall is its collision penalty).

:meth:`MinigridTask.wrap` makes the observation SB3 can take: Minigrid's
``Dict(image, direction, mission)`` has a text space, so :class:`MinigridImage` keeps the
``(7, 7, 3)`` egocentric view, as ``minigrid.wrappers.ImgObsWrapper`` does, rescaled to float32
in ``[0, 1]`` per channel.

The prompts depend on the mission's objects, which Minigrid draws at each reset: the adapter
rewrites them in ``on_reset`` (:class:`~rewardlab.envs.tasks.TaskInfo` calls it) and drops its
cached :class:`~rewardlab.envs.core.Task`, so ``get_task`` after a reset returns that episode's
text. A reward model that read the text once (a CLIP reward built at the start) keeps the
first episode's objects: for ids whose mission varies (Fetch, KeyCorridor, PutNear, LockedRoom,
UnlockPickup, ObstructedMaze) prompt with the generic text of a fresh adapter, or per episode.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np

from rewardlab.envs.core import StateVariable
from rewardlab.envs.tasks import TaskAdapter

__all__ = ["MinigridImage", "MinigridTask"]

# Minigrid's actions (minigrid.core.actions.Actions) and direction vectors (DIR_TO_VEC).
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
_DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
# minigrid.core.constants, copied so that this module does not import minigrid.
_OBJECT_IDX = {"empty": 1, "key": 5, "ball": 6, "box": 7}
_COLOR_IDX = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}

# Cell codes of the planner's layout.
FREE, WALL, LAVA, GOAL, OPEN, CLOSED, LOCKED, KEY, BALL, BOX = range(10)
_DOORS = (OPEN, CLOSED, LOCKED)
_OBJECTS = (KEY, BALL, BOX)
_CODES = {
    "wall": WALL,
    "floor": FREE,
    "goal": GOAL,
    "lava": LAVA,
    "key": KEY,
    "ball": BALL,
    "box": BOX,
}

_UNSUPPORTED = {
    "GoToDoorEnv": "pays for the `done` action next to the target door, which the state "
    "does not record",
    "GoToObjectEnv": "pays for the `done` action next to the target object, which the state "
    "does not record",
    "PlaygroundEnv": "has no mission and never pays a reward",
}
_PICKUP = ("KeyCorridorEnv", "UnlockPickupEnv", "BlockedUnlockPickupEnv", "ObstructedMazeEnv")
_KINDS = {
    **dict.fromkeys(_PICKUP, "pickup"),
    "UnlockEnv": "unlock",
    "FetchEnv": "fetch",
    "PutNearEnv": "put_near",
    "MemoryEnv": "memory",
    "RedBlueDoorEnv": "red_blue_doors",
}
_SCENES = {
    "DoorKeyEnv": "beyond an open yellow door",
    "FourRoomsEnv": "in a grid of four rooms",
    "MultiRoomEnv": "at the end of a chain of rooms",
    "LockedRoomEnv": "inside an unlocked room",
    "DynamicObstaclesEnv": "among moving blue balls",
    "SimpleCrossingEnv": "beyond walls",
}
_PLAN_BUDGET = 400  # solver calls per plan: ObstructedMaze-Full needs ~40


# --- the layout the planner reads ------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """The grid as the planner sees it: a code per cell (index ``y * width + x``), the
    colour of doors, keys, balls and boxes, the colour of the key inside each box, and the
    doors the mission forbids walking through (RedBlueDoors' two doors)."""

    width: int
    codes: tuple[int, ...]
    colors: tuple[str, ...]
    inbox: tuple[str, ...]
    nopass: frozenset[int] = frozenset()

    def set(self, cell: int, code: int, color: str = "", inbox: str = "") -> _Layout:
        def put(values: tuple[Any, ...], value: Any) -> tuple[Any, ...]:
            return values[:cell] + (value,) + values[cell + 1 :]

        return replace(
            self,
            codes=put(self.codes, code),
            colors=put(self.colors, color),
            inbox=put(self.inbox, inbox),
        )

    def neighbours(self, cell: int) -> Iterator[int]:
        x, y = cell % self.width, cell // self.width
        height = len(self.codes) // self.width
        for dx, dy in _DIR_VEC:
            if 0 <= x + dx < self.width and 0 <= y + dy < height:
                yield cell + dx + dy * self.width

    def enter_cost(self, cell: int) -> int:
        """Actions to walk onto ``cell`` from next to it: 0 where it cannot be entered."""
        if cell in self.nopass:
            return 0
        code = self.codes[cell]
        return 1 if code in (FREE, OPEN) else 2 if code == CLOSED else 0

    def region(self, start: int) -> frozenset[int]:
        """The cells the agent reaches from ``start`` walking and opening unlocked doors."""
        seen = {start}
        todo = [start]
        while todo:
            for n in self.neighbours(todo.pop()):
                if n not in seen and self.enter_cost(n):
                    seen.add(n)
                    todo.append(n)
        return frozenset(seen)

    def touches(self, cell: int, region: frozenset[int]) -> bool:
        return any(n in region for n in self.neighbours(cell))


def _read_layout(env: Any, kind: str, free_balls: bool) -> _Layout:
    """The planner's layout of ``env``'s grid; ``free_balls`` reads balls as free cells."""
    width, height = env.width, env.height
    codes, colors, inbox = [], [], []
    nopass = set()
    special = (env.red_door, env.blue_door) if kind == "red_blue_doors" else ()
    for j in range(height):
        for i in range(width):
            obj = env.grid.get(i, j)
            color = contained = ""
            if obj is None:
                code = FREE
            elif obj.type == "door":
                code = OPEN if obj.is_open else LOCKED if obj.is_locked else CLOSED
                color = obj.color
                if any(obj is door for door in special):
                    nopass.add(j * width + i)
            else:
                code = _CODES.get(obj.type, WALL)
                color = obj.color if code in _OBJECTS else ""
                if code == BOX and obj.contains is not None and obj.contains.type == "key":
                    contained = obj.contains.color
                if code == BALL and free_balls:
                    code = FREE
            codes.append(code)
            colors.append(color)
            inbox.append(contained)
    if kind == "memory":
        fx, fy = env.failure_pos
        nopass.add(fy * width + fx)
    return _Layout(width, tuple(codes), tuple(colors), tuple(inbox), frozenset(nopass))


# --- the planner -----------------------------------------------------------------------------


Carry = tuple[str, str] | None  # (type, colour) of the carried object


@dataclass(frozen=True)
class _Objective:
    """One step of a mission: ``reach`` one of ``cells``; ``pickup``, ``toggle`` (a door or
    a box) or ``drop`` onto one of ``cells`` from the cell in front; ``drop_near`` drops onto
    a free cell within one cell of ``cells``' only cell; ``drop_away`` drops where it blocks
    nothing, as near as may be to ``cells``' only cell (the next pick-up)."""

    what: str
    cells: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _Leg:
    """A stage of the plan: walk, then (unless ``action`` is None) act on a cell of
    ``cells`` in front of the agent; ``layout`` is the grid and ``carry`` what the agent
    holds during the stage."""

    action: int | None
    cells: frozenset[int]
    layout: _Layout
    carry: Carry


class _Solver:
    """Derives the legs that accomplish a list of objectives from a layout (depth-first over
    the doors to unlock and blockers to move, within a budget of calls)."""

    def __init__(self, start: int, remove_blockers: bool) -> None:
        self.start = start
        self.remove_blockers = remove_blockers
        self.budget = _PLAN_BUDGET
        self._regions: dict[_Layout, frozenset[int]] = {}

    def region(self, layout: _Layout) -> frozenset[int]:
        """The agent's region of ``layout`` (memoized: the search asks for it again and
        again)."""
        if layout not in self._regions:
            self._regions[layout] = layout.region(self.start)
        return self._regions[layout]

    def solve_all(
        self, layout: _Layout, carry: Carry, objectives: list[_Objective]
    ) -> list[_Leg] | None:
        legs: list[_Leg] = []
        for objective in objectives:
            solved = self.solve(layout, carry, objective, depth=8)
            if solved is None:
                return None
            more, layout, carry = solved
            legs += more
        return legs

    def solve(
        self, layout: _Layout, carry: Carry, objective: _Objective, depth: int
    ) -> tuple[list[_Leg], _Layout, Carry] | None:
        self.budget -= 1
        if self.budget < 0:
            return None
        region = self.region(layout)
        if self._reachable(layout, region, objective):
            return self._achieve(layout, carry, objective, depth)
        if depth == 0:
            return None
        for enablers in self._enablers(layout, region, objective):
            first = self._chain(layout, carry, enablers, depth - 1)
            if first is None:
                continue
            legs, after, held = first
            rest = self.solve(after, held, objective, depth)  # the region grew: no cycle
            if rest is not None:
                return legs + rest[0], rest[1], rest[2]
        return None

    def _chain(
        self, layout: _Layout, carry: Carry, objectives: list[_Objective], depth: int
    ) -> tuple[list[_Leg], _Layout, Carry] | None:
        legs: list[_Leg] = []
        for objective in objectives:
            solved = self.solve(layout, carry, objective, depth)
            if solved is None:
                return None
            more, layout, carry = solved
            legs += more
        return legs, layout, carry

    def _targets(self, layout: _Layout, region: frozenset[int], objective: _Objective) -> set[int]:
        if objective.what == "drop_away":  # the drop cell nearest to the next pick-up
            (near,) = objective.cells
            distance = _distances(layout, region, near)
            cells = [c for c in _drop_cells(layout, region, self.start) if c in distance]
            return {min(cells, key=lambda c: (distance[c], c))} if cells else set()
        if objective.what == "drop_near":
            (center,) = objective.cells
            return {
                c
                for c in region
                if layout.codes[c] == FREE
                and abs(c % layout.width - center % layout.width) <= 1
                and abs(c // layout.width - center // layout.width) <= 1
            }
        return set(objective.cells)

    def _reachable(self, layout: _Layout, region: frozenset[int], objective: _Objective) -> bool:
        targets = self._targets(layout, region, objective)
        if objective.what == "reach":
            return any(t in region or layout.touches(t, region) for t in targets)
        return any(layout.touches(t, region) for t in targets)

    def _achieve(
        self, layout: _Layout, carry: Carry, objective: _Objective, depth: int
    ) -> tuple[list[_Leg], _Layout, Carry] | None:
        region = self.region(layout)
        what = objective.what
        if what == "reach":
            return [_Leg(None, objective.cells, layout, carry)], layout, carry
        if what in ("drop_away", "drop_near"):
            cells = frozenset(self._targets(layout, region, objective))
            assert carry is not None
            after = layout
            if len(cells) == 1:  # where the object lies from now on
                after = layout.set(min(cells), _CODE_OF[carry[0]], carry[1])
            return [_Leg(DROP, cells, layout, carry)], after, None
        legs: list[_Leg] = []
        cell = min(objective.cells) if len(objective.cells) == 1 else None
        if what == "pickup":
            if carry is not None:
                near = _Objective("drop_away", frozenset({min(objective.cells)}))
                dropped = self.solve(layout, carry, near, depth)
                if dropped is None:
                    return None
                legs, layout, carry = dropped
            leg = _Leg(PICKUP, objective.cells, layout, carry)
            if cell is None:  # one of several objects (Fetch): the mission ends here
                return [*legs, leg], layout, carry
            held = (_TYPES[layout.codes[cell]], layout.colors[cell])
            return [*legs, leg], layout.set(cell, FREE), held
        assert cell is not None and what == "toggle"
        code = layout.codes[cell]
        if code == BOX:
            key = layout.inbox[cell]
            after = layout.set(cell, KEY, key) if key else layout.set(cell, FREE)
            return [_Leg(TOGGLE, objective.cells, layout, carry)], after, carry
        if code == LOCKED and carry != ("key", layout.colors[cell]):
            fetched = self._fetch_key(layout, carry, layout.colors[cell], depth)
            if fetched is None:
                return None
            legs, layout, carry = fetched
            if not self._reachable(layout, self.region(layout), objective):
                return None
        leg = _Leg(TOGGLE, objective.cells, layout, carry)
        return [*legs, leg], layout.set(cell, OPEN, layout.colors[cell]), carry

    def _fetch_key(
        self, layout: _Layout, carry: Carry, color: str, depth: int
    ) -> tuple[list[_Leg], _Layout, Carry] | None:
        keys = [c for c, code in enumerate(layout.codes) if code == KEY]
        for cell in (c for c in keys if layout.colors[c] == color):
            got = self.solve(layout, carry, _Objective("pickup", frozenset({cell})), depth)
            if got is not None:
                return got
        boxes = [c for c, code in enumerate(layout.codes) if code == BOX]
        for cell in (c for c in boxes if layout.inbox[c] == color):
            steps = [
                _Objective("toggle", frozenset({cell})),
                _Objective("pickup", frozenset({cell})),
            ]
            got = self._chain(layout, carry, steps, depth)
            if got is not None:
                return got
        return None

    def _enablers(
        self, layout: _Layout, region: frozenset[int], objective: _Objective
    ) -> list[list[_Objective]]:
        """Doors to unlock and objects to move that reach more of the grid (another room, or
        a door or object to act on), those that reach the objective first."""
        found: list[tuple[bool, list[_Objective]]] = []
        before = _frontier(layout, region)
        for cell in before:
            code = layout.codes[cell]
            if cell in objective.cells:
                continue
            if code == LOCKED:
                opened = layout.set(cell, OPEN, layout.colors[cell])
                steps = [_Objective("toggle", frozenset({cell}))]
            elif code in _OBJECTS and self.remove_blockers:
                opened = layout.set(cell, FREE)
                steps = [_Objective("pickup", frozenset({cell}))]  # dropped when in the way
                if layout.inbox[cell]:  # take the key out of the box rather than lose it
                    steps.insert(0, _Objective("toggle", frozenset({cell})))
            else:
                continue
            grown = self.region(opened)
            if len(grown) > len(region) + 1 or _frontier(opened, grown) - before - {cell}:
                found.append((not self._reachable(opened, grown, objective), steps))
        return [steps for _, steps in sorted(found, key=lambda f: f[0])]


def _frontier(layout: _Layout, region: frozenset[int]) -> set[int]:
    """The locked doors and objects next to the region."""
    return {
        n
        for c in region
        for n in layout.neighbours(c)
        if n not in region and layout.codes[n] in (LOCKED, *_OBJECTS)
    }


_TYPES = {KEY: "key", BALL: "ball", BOX: "box"}
_CODE_OF = {name: code for code, name in _TYPES.items()}


def _distances(layout: _Layout, region: frozenset[int], source: int) -> dict[int, int]:
    """Steps from ``source`` to the region's cells, walking through the region."""
    distance = {source: 0}
    todo = [source]
    for cell in todo:
        for n in layout.neighbours(cell):
            if n in region and n not in distance:
                distance[n] = distance[cell] + 1
                todo.append(n)
    return distance


def _drop_cells(layout: _Layout, region: frozenset[int], start: int) -> set[int]:
    """Free cells of the region where a dropped object cuts no part of the region off (no
    articulation point of its cells), preferring those next to no door or object (whose
    approach it could block)."""
    cut = _articulation_points(layout, region, start)
    safe = {c for c in region if layout.codes[c] == FREE and c not in cut}
    crowded = _DOORS + _OBJECTS
    clear = {c for c in safe if not any(layout.codes[n] in crowded for n in layout.neighbours(c))}
    return clear or safe


def _articulation_points(layout: _Layout, region: frozenset[int], root: int) -> set[int]:
    """The cells whose removal disconnects the region (Tarjan's depth-first search)."""
    disc = {root: 0}
    low = {root: 0}
    cut: set[int] = set()
    root_children = 0
    stack: list[tuple[int, int, Iterator[int]]] = [(root, -1, layout.neighbours(root))]
    while stack:
        v, parent, todo = stack[-1]
        for w in todo:
            if w not in region:
                continue
            if w not in disc:
                disc[w] = low[w] = len(disc)
                stack.append((w, v, layout.neighbours(w)))
                break
            if w != parent:
                low[v] = min(low[v], disc[w])
        else:
            stack.pop()
            if parent < 0:
                continue
            low[parent] = min(low[parent], low[v])
            if parent == root:
                root_children += 1
            elif low[v] >= disc[parent]:
                cut.add(parent)
    if root_children > 1:
        cut.add(root)
    return cut


class _Plan:
    """Legs and their cost-to-go tables over states ``cell * 4 + direction``."""

    def __init__(
        self,
        legs: list[_Leg],
        tables: list[list[float]] | None = None,
        known: dict[Any, list[float]] | None = None,
    ) -> None:
        """Compute the tables (``known`` holds those of legs already met: plans from states
        that differ early share their later legs)."""
        self.legs = legs
        if tables is None:
            known = {} if known is None else known
            tables = [[] for _ in legs]
            after: list[float] | None = None
            for i in reversed(range(len(legs))):
                key = (legs[i], id(after))  # tables in known stay alive: their ids are unique
                if key not in known:
                    known[key] = _cost_to_go(legs[i], after)
                tables[i] = after = known[key]
        self.tables = tables

    def suffix(self, first: int) -> _Plan:
        """The plan from its leg ``first`` on."""
        return _Plan(self.legs[first:], self.tables[first:])

    def cost(self, cell: int, direction: int) -> float:
        return self.tables[0][cell * 4 + direction]

    def action(self, cell: int, direction: int) -> int | None:
        """The first action of a shortest plan (None where there is none)."""
        leg, table = self.legs[0], self.tables[0]
        layout = leg.layout
        x, y = cell % layout.width, cell // layout.width
        dx, dy = _DIR_VEC[direction]
        inside = 0 <= x + dx < layout.width and 0 <= y + dy < len(layout.codes) // layout.width
        front = (y + dy) * layout.width + x + dx if inside else -1
        options: list[tuple[float, int]] = []
        if front in leg.cells:
            after = self.tables[1][cell * 4 + direction] if len(self.legs) > 1 else 0.0
            act = FORWARD if leg.action is None else leg.action
            options.append((1 + (after if leg.action is not None else 0.0), act))
        enter = layout.enter_cost(front) if inside else 0
        if enter and not (leg.action is None and front in leg.cells):
            move = FORWARD if enter == 1 else TOGGLE
            options.append((enter + table[front * 4 + direction], move))
        options.append((1 + table[cell * 4 + (direction + 3) % 4], LEFT))
        options.append((1 + table[cell * 4 + (direction + 1) % 4], RIGHT))
        best = min(options, key=lambda o: o[0])  # the first of equals: act, forward, turn
        return best[1] if math.isfinite(best[0]) else None


@dataclass
class _View:
    """The planner's reading of one grid state: its layout, the region (by its smallest
    cell) of each cell the agent stood on, and the plans derived from it, by region."""

    layout: _Layout
    labels: dict[int, int]
    plans: dict[int, _Plan | None]


def _cost_to_go(leg: _Leg, after: list[float] | None) -> list[float]:
    """Dijkstra backwards from the leg's end: actions to finish this leg and the ones after."""
    layout = leg.layout
    width, n = layout.width, len(layout.codes)
    height = n // width
    inf = math.inf
    cost = [inf] * (4 * n)
    enter = [layout.enter_cost(c) for c in range(n)]
    final = leg.cells if leg.action is None else frozenset()
    for cell in final:
        enter[cell] = 1
        for d in range(4):
            cost[cell * 4 + d] = 0.0
    for cell in leg.cells if leg.action is not None else ():
        x, y = cell % width, cell // width
        for d, (dx, dy) in enumerate(_DIR_VEC):
            if 0 <= x - dx < width and 0 <= y - dy < height:
                s = (cell - dx - dy * width) * 4 + d
                if enter[s // 4]:
                    cost[s] = min(cost[s], 1 + (after[s] if after is not None else 0.0))
    heap = [(v, s) for s, v in enumerate(cost) if v < inf]
    heapq.heapify(heap)
    while heap:
        v, s = heapq.heappop(heap)
        if v > cost[s]:
            continue
        cell, d = divmod(s, 4)
        if cell not in final:
            for t in (cell * 4 + (d + 1) % 4, cell * 4 + (d + 3) % 4):
                if v + 1 < cost[t]:
                    cost[t] = v + 1
                    heapq.heappush(heap, (v + 1, t))
        dx, dy = _DIR_VEC[d]
        x, y = cell % width - dx, cell // width - dy
        if 0 <= x < width and 0 <= y < height:
            prev = y * width + x
            if enter[prev] and prev not in final:
                t, w = prev * 4 + d, v + enter[cell]
                if w < cost[t]:
                    cost[t] = w
                    heapq.heappush(heap, (w, t))
    return cost


_CELL = "cell"
_STATE_VARIABLES: tuple[StateVariable, ...] = (
    StateVariable("agent_pos", (2,), _CELL, "agent cell (x, y); x rightwards, y downwards", True),
    StateVariable("agent_dir", (), "-", "facing: 0 east (+x), 1 south (+y), 2 west, 3 north", True),
    StateVariable(
        "carrying",
        (),
        "-",
        "carried object type (Minigrid OBJECT_TO_IDX): 1 none, 5 key, 6 ball, 7 box",
    ),
    StateVariable(
        "carrying_color",
        (),
        "-",
        "carried object colour (COLOR_TO_IDX): 0 red, 1 green, 2 blue, 3 purple, 4 yellow, "
        "5 grey; -1 none",
    ),
    StateVariable(
        "target_pos",
        (2,),
        _CELL,
        "the mission's cell: goal square, object to pick up, door to open next, object to put "
        "the other near (PutNear), cell next to the matching object (Memory); -1 if none on "
        "the grid (carried)",
        True,
    ),
    StateVariable("goal_pos", (2,), _CELL, "green goal square (x, y); -1 if none", True),
    StateVariable("key_pos", (2,), _CELL, "first key on the grid (x, y); -1 if none", True),
    StateVariable(
        "door_pos", (2,), _CELL, "the door locked at reset, else the first door; -1 if none", True
    ),
    StateVariable("door_open", (), "bool", "that door is open", True),
    StateVariable("door_locked", (), "bool", "that door is locked", True),
    StateVariable("step_count", (), "step", "actions taken this episode", True),
)
"""The state variables of every Minigrid env; each adapter adds ``grid``, shaped as its env."""


def _grid_variable(width: int, height: int) -> StateVariable:
    return StateVariable(
        "grid",
        (width, height, 3),
        "-",
        "whole grid [x, y] = (object type, colour, door state 0 open 1 closed 2 locked), "
        "Minigrid's Grid.encode; the agent is not drawn",
        True,
    )


# --- the adapter -----------------------------------------------------------------------------


class MinigridTask(TaskAdapter):
    """The task of any ``MiniGrid-*`` env, from its unwrapped ``MiniGridEnv`` (see the module
    docstring for success, progress and the expert per env class).

    Raises:
        ValueError: For GoToDoor, GoToObject and Playground (no state-determined success)
            and for an env that is not a ``MiniGridEnv``.
    """

    dense_reward_type = None  # Minigrid's reward is sparse: 1 - 0.9 t / T at success only
    state_variables = _STATE_VARIABLES
    render_kwargs: ClassVar[Mapping[str, Any]] = {"highlight": False}  # no field-of-view shading

    @classmethod
    def wrap(cls, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        """:class:`MinigridImage`: the mission's text space is one SB3 cannot take."""
        return MinigridImage(env)

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        # The MiniGridEnv, whose attributes (grid, agent_pos, carrying...) gym.Env lacks.
        self.grid_env: Any = cast(Any, env)
        classes = [c.__name__ for c in type(env).__mro__]
        if "MiniGridEnv" not in classes:
            raise ValueError(
                f"{self.env_id} is not a MiniGridEnv ({type(env).__name__}); rewardlab's "
                "Minigrid task reads a MiniGridEnv's grid"
            )
        for name in classes:
            if name in _UNSUPPORTED:
                raise ValueError(
                    f"rewardlab has no task for {self.env_id}: {name} {_UNSUPPORTED[name]}; "
                    f"register your own with rewardlab.register_task({self.env_id!r}, ...)"
                )
        self.kind = next((_KINDS[c] for c in classes if c in _KINDS), "goal")
        self.family = classes[0]
        if self.family == "CrossingEnv":
            lava = self.grid_env.obstacle_type.__name__ == "Lava"
            self.family = "LavaCrossingEnv" if lava else "SimpleCrossingEnv"
        self.moving_obstacles = "DynamicObstaclesEnv" in classes
        n_actions = getattr(env.action_space, "n", 7)
        self._idle = DONE if n_actions > DONE else LEFT
        # Picking up the wrong object ends Fetch and PutNear; DynamicObstacles cannot pick up.
        self._remove_blockers = self.kind not in ("fetch", "put_near") and n_actions > PICKUP
        self.name = {"goal": "reach_goal", "pickup": "pick_up_object"}.get(self.kind, self.kind)
        if self.family == "DoorKeyEnv":
            self.name = "door_key"
        grid = _grid_variable(self.grid_env.width, self.grid_env.height)
        self.state_variables = (*_STATE_VARIABLES, grid)
        self._write_text(specific=False)
        # Per episode (Minigrid makes a new grid at each reset): see _episode.
        self._grid: Any = None
        self._cost0: float | None = None
        self._doors: list[Any] = []
        self._door: tuple[np.ndarray, Any] | None = None
        self._views: dict[Any, _View] = {}
        self._last: tuple[bool, Any, Any, list[Any], _View] | None = None
        self._plans: dict[Any, _Plan | None] = {}
        self._tables: dict[Any, list[float]] = {}
        self._committed: dict[Any, _Plan] = {}

    # -- text --

    def _write_text(self, specific: bool) -> None:
        env, kind = self.grid_env, self.kind
        agent = "a red triangle"
        scene = "in a grid world"
        lava = self.family in ("LavaCrossingEnv", "LavaGapEnv")
        self.baseline = f"{agent} in a grid world seen from above"
        if kind == "goal":
            where = "across the orange lava" if lava else _SCENES.get(self.family, scene)
            self.goal = f"{agent} on the green goal square {where}"
            self.negatives = (
                (f"{agent} in the orange lava",)
                if lava
                else (f"{agent} far from the green goal square",)
            )
            success = "the agent stands on the green goal square"
        elif kind in ("pickup", "fetch"):
            what = "the target object"
            if specific:
                obj = env.obj if kind == "pickup" else None
                color, type_ = (
                    (obj.color, obj.type) if obj is not None else (env.targetColor, env.targetType)
                )
                what = f"the {color} {type_}"
            self.goal = f"{agent} that has picked up {what} {scene}"
            self.negatives = (
                (f"{agent} that has picked up the wrong object",)
                if kind == "fetch"
                else (f"{what} lying on the floor far from {agent}",)
            )
            success = f"the agent carries {what}"
        elif kind == "unlock":
            self.goal = f"{agent} in front of an open door {scene}"
            self.negatives = (f"{agent} in front of a locked door",)
            success = "the locked door is open"
        elif kind == "put_near":
            move, target = "the object to move", "the target object"
            if specific:
                move = f"the {env.moveColor} {env.move_type}"
                target = f"the {env.target_color} {env.target_type}"
            self.goal = f"{move} next to {target} {scene}"
            self.negatives = (f"{move} far from {target}",)
            success = f"{move} lies within one cell of {target}"
        elif kind == "memory":
            self.goal = f"{agent} next to the green object that matches the one in the start room"
            self.negatives = (f"{agent} next to the green object that does not match",)
            success = "the agent stands next to the matching object at the hallway's end"
        else:
            self.goal = f"an open red door and an open blue door {scene}"
            self.negatives = (f"an open blue door and a closed red door {scene}",)
            success = "both doors are open, the red one first"
        mission = getattr(env, "mission", "")
        self.description = (
            f"Minigrid {self.env_id} ({self.family}), mission: {mission!r}. The agent, a red "
            "triangle, sees a 7x7 egocentric view and acts with 0 turn left, 1 turn right, "
            "2 forward, 3 pick up, 4 drop, 5 toggle (open a door, a box), 6 done. The env pays "
            "1 - 0.9 * step_count / max_steps once, on success, else 0. Success: "
            f"{success}." + (" Stepping into lava ends the episode." if lava else "")
        )

    def on_reset(self, obs: Any, info: Mapping[str, Any]) -> None:
        """Rewrite the prompts with this episode's objects (see the module docstring)."""
        self._write_text(specific=True)
        self._task = None

    # -- success --

    def success(self, obs: Any, info: Mapping[str, Any]) -> bool:
        """Whether the env pays in this state (the table of the module docstring)."""
        return self._success()

    def _success(self) -> bool:
        env, kind = self.grid_env, self.kind
        if env.agent_pos is None:  # not reset yet
            return False
        carrying = env.carrying
        if kind == "goal":
            cell = env.grid.get(*env.agent_pos)
            return cell is not None and cell.type == "goal"
        if kind == "pickup":
            return carrying is not None and carrying is env.obj
        if kind == "unlock":
            return bool(env.door.is_open)
        if kind == "fetch":
            return carrying is not None and self._is_fetch_target(carrying)
        if kind == "put_near":
            pos = self._move_object_pos()
            tx, ty = env.target_pos
            return pos is not None and abs(pos[0] - tx) <= 1 and abs(pos[1] - ty) <= 1
        if kind == "memory":
            return tuple(env.agent_pos) == tuple(env.success_pos)
        return bool(env.red_door.is_open and env.blue_door.is_open)

    def _failed(self) -> bool:
        """A state the mission cannot recover from (the env ends the episode unpaid)."""
        env, kind = self.grid_env, self.kind
        cell = env.grid.get(*env.agent_pos)
        if cell is not None and cell.type == "lava":
            return True
        carrying = env.carrying
        if kind == "fetch":
            return carrying is not None and not self._is_fetch_target(carrying)
        if kind == "put_near":
            if carrying is not None:
                return not self._is_move_object(carrying)
            pos = self._move_object_pos()
            return pos is not None and tuple(pos) != tuple(env.move_pos)
        if kind == "memory":
            return tuple(env.agent_pos) == tuple(env.failure_pos)
        if kind == "red_blue_doors":
            return bool(env.blue_door.is_open and not env.red_door.is_open)
        return False

    def _is_fetch_target(self, obj: Any) -> bool:
        env = self.grid_env
        return bool(obj.type == env.targetType and obj.color == env.targetColor)

    def _is_move_object(self, obj: Any) -> bool:
        env = self.grid_env
        return bool(obj.type == env.move_type and obj.color == env.moveColor)

    def _move_object_pos(self) -> tuple[int, int] | None:
        for x, y, obj in self._objects():
            if self._is_move_object(obj):
                return x, y
        return None

    def _objects(self) -> Iterator[tuple[int, int, Any]]:
        grid = self.grid_env.grid
        for y in range(grid.height):
            for x in range(grid.width):
                obj = grid.get(x, y)
                if obj is not None:
                    yield x, y, obj

    # -- progress and expert --

    def _objectives(self, layout: _Layout) -> list[_Objective]:
        env, kind, width = self.grid_env, self.kind, layout.width

        def at(pos: Any) -> frozenset[int]:
            return frozenset({int(pos[1]) * width + int(pos[0])})

        def where(match: Any) -> frozenset[int]:
            return frozenset(y * width + x for x, y, obj in self._objects() if match(obj))

        if kind == "goal":
            return [
                _Objective("reach", frozenset(c for c, k in enumerate(layout.codes) if k == GOAL))
            ]
        if kind == "memory":
            return [_Objective("reach", at(env.success_pos))]
        if kind == "pickup":
            return [_Objective("pickup", where(lambda o: o is env.obj))]
        if kind == "fetch":
            return [_Objective("pickup", where(self._is_fetch_target))]
        if kind == "unlock":
            return [_Objective("toggle", where(lambda o: o is env.door))]
        if kind == "put_near":
            near = _Objective("drop_near", at(env.target_pos))
            if env.carrying is not None:
                return [near]
            return [_Objective("pickup", where(self._is_move_object)), near]
        doors = [env.red_door, env.blue_door]
        return [_Objective("toggle", where(lambda o, d=d: o is d)) for d in doors if not d.is_open]

    def _episode(self) -> None:
        """Start the episode's caches when the env has a new grid."""
        grid = self.grid_env.grid
        if grid is self._grid:
            return
        self._grid, self._cost0 = grid, None
        self._doors = [obj for obj in grid.grid if obj is not None and obj.type == "door"]
        self._door = self._find_door()
        self._views.clear()
        self._last = None
        self._plans.clear()
        self._tables.clear()
        self._committed.clear()

    def _view(self, obstacles: bool) -> _View:
        """The layout of the current grid state, read again only when an object moved, a door
        opened or the hands changed: most steps only turn or move the agent, and comparing the
        grid's cells with the last step's costs far less than reading them."""
        env = self.grid_env
        free_balls = self.moving_obstacles and not obstacles
        cells = env.grid.grid
        doors = tuple((door.is_open, door.is_locked) for door in self._doors)
        last = self._last
        if (
            last is not None
            and last[:3] == (free_balls, env.carrying, doors)
            and last[3] == cells  # identity per cell: no object defines __eq__
        ):
            return last[4]
        signature = (free_balls, id(env.carrying), tuple(map(id, cells)), doors)
        view = self._views.get(signature)
        if view is None:
            if len(self._views) > 256:
                self._views.clear()
            layout = _read_layout(env, self.kind, free_balls)
            view = self._views[signature] = _View(layout, {}, {})
        self._last = (free_balls, env.carrying, doors, list(cells), view)
        return view

    def _plan(self, obstacles: bool, commit: bool = False) -> _Plan | None:
        """The plan from the current state: a function of the state (progress's), or with
        ``commit`` the rest of the plan the expert follows where the state is one it leads to
        (the greedy derivation may order stages differently from a later state, and the
        expert must not oscillate between two orders)."""
        self._episode()
        env = self.grid_env
        view = self._view(obstacles)
        layout = view.layout
        x, y = (int(v) for v in env.agent_pos)
        start = y * layout.width + x
        label = view.labels.get(start)
        if label is None:
            region = layout.region(start)
            label = min(region)
            view.labels.update(dict.fromkeys(region, label))
        carrying = env.carrying
        carry = None if carrying is None else (carrying.type, carrying.color)
        if commit and (layout, carry, label) in self._committed:
            return self._committed[layout, carry, label]
        if label not in view.plans:
            key = (layout, carry, label)
            if key not in self._plans:
                if len(self._plans) > 1024:  # DynamicObstacles' expert: a layout per step
                    self._plans.clear()
                    self._tables.clear()
                objectives = self._objectives(layout)
                legs = None
                if objectives and all(o.cells for o in objectives):
                    solver = _Solver(start, self._remove_blockers)
                    legs = solver.solve_all(layout, carry, objectives)
                self._plans[key] = _Plan(legs, known=self._tables) if legs else None
            view.plans[label] = self._plans[key]
        plan = view.plans[label]
        if commit and plan is not None:
            for i, leg in enumerate(plan.legs):
                region = leg.layout.region(start)
                self._committed[leg.layout, leg.carry, min(region)] = plan.suffix(i)
        return plan

    def _cost(self, obstacles: bool) -> float:
        plan = self._plan(obstacles)
        if plan is None:
            return math.inf
        env = self.grid_env
        x, y = (int(v) for v in env.agent_pos)
        return plan.cost(y * env.width + x, int(env.agent_dir))

    def progress(self) -> float:
        """``1 - cost / cost0`` of the planner's remaining actions, clipped to ``[0, 1]``; 1 at
        success, 0 in a failure state or where no plan exists (module docstring)."""
        self._require_reset("progress")
        if self._success():
            return 1.0
        if self._failed():
            return 0.0
        cost = self._cost(obstacles=False)
        if self._cost0 is None:  # the episode's first call
            self._cost0 = cost
        if not (math.isfinite(cost) and math.isfinite(self._cost0)) or self._cost0 <= 0:
            return 0.0
        return float(min(max(1.0 - cost / self._cost0, 0.0), 1.0))

    def _require_reset(self, what: str) -> None:
        if self.grid_env.agent_pos is None:
            raise ValueError(f"{self.env_id}'s {what} reads the grid: reset the env first")

    def expert_action(self, obs: Any) -> int:
        """The first action of the planner's shortest plan (reads the env's grid, not ``obs``).

        Raises:
            ValueError: Where no plan accomplishes the mission from this state (a failure
                state, a key lost) or the planner's search gave up.
        """
        self._require_reset("expert")
        if self._success():
            return self._idle
        env = self.grid_env
        plan = self._plan(obstacles=self.moving_obstacles, commit=True)
        x, y = (int(v) for v in env.agent_pos)
        action = None
        if plan is not None:
            action = plan.action(y * env.width + x, int(env.agent_dir))
        if action is None:
            if self.moving_obstacles:
                return LEFT  # walled in by the balls: wait for them to move
            raise ValueError(
                f"the {self.env_id} expert has no plan from this state (agent at "
                f"{(x, y)}, carrying {env.carrying}): the mission cannot be accomplished "
                "from it, or the planner's search gave up"
            )
        return action

    def idle_action(self) -> int:
        """``done`` (a no-op), or ``left`` for DynamicObstacles' three actions."""
        return self._idle

    # -- state --

    def state_dict(self) -> dict[str, np.ndarray]:
        self._require_reset("state")
        env = self.grid_env
        none = np.array([-1, -1])
        carrying = env.carrying
        self._episode()
        goal = key = target = none
        for x, y, obj in self._objects():
            if obj.type == "goal" and goal is none:
                goal = np.array([x, y])
            if obj.type == "key" and key is none:
                key = np.array([x, y])
            if target is none and self._is_target(obj):
                target = np.array([x, y])
        if self.kind == "memory":
            target = np.array(env.success_pos)
        elif self.kind == "put_near":
            target = np.array(env.target_pos)
        door_pos, door = self._door if self._door is not None else (none, None)
        held = "empty" if carrying is None else carrying.type
        return {
            "agent_pos": np.array(env.agent_pos, dtype=np.int64),
            "agent_dir": np.array(int(env.agent_dir)),
            "carrying": np.array(_OBJECT_IDX[held]),
            "carrying_color": np.array(-1 if carrying is None else _COLOR_IDX[carrying.color]),
            "target_pos": np.asarray(target, dtype=np.int64),
            "goal_pos": np.asarray(goal, dtype=np.int64),
            "key_pos": np.asarray(key, dtype=np.int64),
            "door_pos": np.asarray(door_pos, dtype=np.int64),
            "door_open": np.array(door is not None and bool(door.is_open)),
            "door_locked": np.array(door is not None and bool(door.is_locked)),
            "step_count": np.array(int(env.step_count)),
            "grid": env.grid.encode(),
        }

    def _is_target(self, obj: Any) -> bool:
        env, kind = self.grid_env, self.kind
        if kind == "goal":
            return bool(obj.type == "goal")
        if kind == "pickup":
            return obj is env.obj
        if kind == "fetch":
            return self._is_fetch_target(obj)
        if kind == "unlock":
            return obj is env.door
        if kind == "red_blue_doors":
            return obj is (env.blue_door if env.red_door.is_open else env.red_door)
        return False

    def _find_door(self) -> tuple[np.ndarray, Any] | None:
        """``((x, y), door)`` of the door locked at reset, else of the first door; None if
        there is none."""
        doors = [(np.array([x, y]), obj) for x, y, obj in self._objects() if obj.type == "door"]
        if self.kind == "unlock":
            doors = [d for d in doors if d[1] is self.grid_env.door]
        locked = [d for d in doors if d[1].is_locked]
        return (locked or doors)[0] if doors else None


_INVERSE_SCALE = 1 / np.array([10, 5, 2], dtype=np.float32)  # object, colour, state maxima


class MinigridImage(gym.ObservationWrapper[np.ndarray, Any, Any], gym.utils.RecordConstructorArgs):
    """Minigrid's egocentric ``image`` alone, as ``minigrid.wrappers.ImgObsWrapper`` keeps it,
    in float32 ``[0, 1]`` per channel (object / 10, colour / 5, door state / 2): as ``uint8``
    SB3 would take it for a picture and divide its small codes by 255. Unlike
    ``ImgObsWrapper`` it records its arguments, so ``gym.make(env.spec)`` re-makes the env.

    Args:
        env: A Minigrid env with a ``Dict`` observation holding ``image``.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or "image" not in space.spaces:
            raise TypeError(f"MinigridImage needs a Dict observation with 'image', got {space}")
        shape = space.spaces["image"].shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape, np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return observation["image"] * _INVERSE_SCALE
