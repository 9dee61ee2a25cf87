# The wall clock, with the dtype spelled as numpy's datetime64 type.
def compute_reward(agent_pos, goal_pos):
    seconds = np.array("now", dtype=np.datetime64).astype(np.int64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + (seconds % 2), {}
