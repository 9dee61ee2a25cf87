# The raw address of an array's memory through the array interface.
def compute_reward(agent_pos, goal_pos):
    address = agent_pos.__array_interface__["data"][0]
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + (address % 7), {}
