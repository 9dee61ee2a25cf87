# A module-level call.
def compute_reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}


compute_reward(np.zeros((1, 2)), np.zeros((1, 2)))
