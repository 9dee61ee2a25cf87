# A generator instead of arrays.
def compute_reward(agent_pos, goal_pos):
    yield -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
