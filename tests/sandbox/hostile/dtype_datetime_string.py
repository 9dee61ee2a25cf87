# The wall clock without .item(): numpy parses "now" into a datetime64 array, and astype
# turns it into seconds since 1970.
def compute_reward(agent_pos, goal_pos):
    seconds = np.array("now", dtype="M8[s]").astype(np.float64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + (seconds % 2), {}
