def compute_reward(agent_pos, goal_pos, lava):
    # Approach the goal; stepping into lava is heavily penalized.
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    rows = np.arange(agent_pos.shape[0])
    in_lava = lava[rows, agent_pos[:, 1], agent_pos[:, 0]].astype(np.float64)
    approach = -0.05 * distance
    lava_penalty = -5.0 * in_lava
    goal_bonus = 10.0 * (distance == 0).astype(np.float64)
    reward = approach + lava_penalty + goal_bonus
    return reward, {"approach": approach, "lava_penalty": lava_penalty, "goal_bonus": goal_bonus}
