# .view reinterprets memory: over an object array, the raw object pointers.
def compute_reward(agent_pos, goal_pos):
    pointers = np.full(4, None).view(np.int64)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + pointers[0] * 0, {}
