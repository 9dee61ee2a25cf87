# `float` rebound to a datetime dtype string, then used where a dtype is expected.
def compute_reward(agent_pos, goal_pos):
    float = "M8[s]"
    seconds = np.array("now", dtype=float).astype(np.int64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + seconds * 0, {}
