# Two definitions: which one runs?
def compute_reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}


def compute_reward(agent_pos, goal_pos):
    return np.abs(agent_pos - goal_pos).sum(axis=-1), {}
