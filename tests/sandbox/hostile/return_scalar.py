# One number for the whole batch.
def compute_reward(agent_pos, goal_pos):
    return float(np.abs(agent_pos - goal_pos).sum()), {}
