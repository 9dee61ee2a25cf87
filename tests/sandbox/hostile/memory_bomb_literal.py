# Repeat a list by a huge integer literal.
def compute_reward(agent_pos, goal_pos):
    table = [0] * 100000000000000000000
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
