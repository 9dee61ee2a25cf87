# The dtype hidden in a ** mapping.
def compute_reward(agent_pos, goal_pos):
    options = {"dtype": "M8[s]"}
    seconds = np.array("now", **options).astype(np.float64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + seconds * 0.0, {}
