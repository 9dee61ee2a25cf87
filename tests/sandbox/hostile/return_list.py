# A Python list instead of an array.
def compute_reward(agent_pos, goal_pos):
    return list(np.abs(agent_pos - goal_pos).sum(axis=-1)), {}
