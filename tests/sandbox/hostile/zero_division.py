# An ordinary bug: Python integer division by zero.
def compute_reward(agent_pos, goal_pos):
    steps = 0
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) / (1 // steps), {}
