# Raw memory access through ctypes.
def compute_reward(agent_pos, goal_pos):
    import ctypes
    ctypes.string_at(0)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
