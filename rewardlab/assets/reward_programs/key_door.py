def manhattan(a, b):
    return np.abs(a - b).sum(axis=-1).astype(np.float64)


def compute_reward(agent_pos, carrying_key, door_open, key_pos, door_pos, goal_pos):
    # Every step costs something until the goal: the distance to the current sub-goal (the
    # key, then the door, then the goal) and each stage not yet done. Reaching the goal ends
    # the episode with a large bonus, so finishing fast is the only way to score well.
    has_key = carrying_key.astype(np.float64)
    opened = door_open.astype(np.float64)
    to_key = manhattan(agent_pos, key_pos)
    to_door = manhattan(agent_pos, door_pos)
    to_goal = manhattan(agent_pos, goal_pos)
    distance = np.where(opened > 0, to_goal, np.where(has_key > 0, to_door, to_key))
    approach = -0.01 * distance
    stages = -0.1 * (1.0 - has_key) - 0.1 * (1.0 - opened)
    goal_bonus = 10.0 * (to_goal == 0).astype(np.float64)
    reward = approach + stages + goal_bonus
    return reward, {"approach": approach, "stages": stages, "goal_bonus": goal_bonus}
