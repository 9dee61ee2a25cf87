# An array of strings (its dtype inferred from the strings, not named).
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1)
    return np.where(dist > 1, "far", "near"), {}
