# .data is a memoryview of the array's raw buffer.
def compute_reward(agent_pos, goal_pos):
    raw = agent_pos.data
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + len(raw) * 0, {}
