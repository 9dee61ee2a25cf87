# The function has the wrong name.
def reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
