# Infinite rewards from a division by a zero distance.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1).astype(np.float64)
    return 1.0 / (dist * 0.0), {}
