# The address of an array's memory through .ctypes.
def compute_reward(agent_pos, goal_pos):
    address = agent_pos.ctypes.data
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + (address % 7), {}
