# NaN rewards poison the value function.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1).astype(np.float64)
    return dist * np.nan, {"distance": dist}
