# Integer power with ~10**10 digits: CPU and memory bomb.
def compute_reward(agent_pos, goal_pos):
    scale = 10**10**10
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
