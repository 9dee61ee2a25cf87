def compute_reward(agent_pos, goal_pos, lava):
    # A small cost per step for the distance to the goal, a large bonus at the goal, and a
    # penalty for lava much larger than any cost of walking on (lava ends the episode).
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    rows = np.arange(agent_pos.shape[0])
    in_lava = lava[rows, agent_pos[:, 1], agent_pos[:, 0]].astype(np.float64)
    approach = -0.01 * distance
    lava_penalty = -50.0 * in_lava
    goal_bonus = 10.0 * (distance == 0).astype(np.float64)
    reward = approach + lava_penalty + goal_bonus
    return reward, {"approach": approach, "lava_penalty": lava_penalty, "goal_bonus": goal_bonus}
