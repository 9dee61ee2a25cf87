# Repeat a list 10**10 times: ~80 GB.
def compute_reward(agent_pos, goal_pos):
    table = [0] * 10**10
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
