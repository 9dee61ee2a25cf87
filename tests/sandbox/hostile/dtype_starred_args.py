# The dtype hidden in *args.
def compute_reward(agent_pos, goal_pos):
    args = ("now", "M8[s]")
    seconds = np.array(*args).astype(np.float64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + seconds * 0.0, {}
