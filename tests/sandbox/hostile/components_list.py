# Components as a list instead of a dict.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1)
    return -dist, [dist]
