# A reward scale that dwarfs everything else.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1).astype(np.float64)
    return 1e9 * (dist + 1.0), {}
