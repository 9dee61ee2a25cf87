# (B, 1) instead of (B,).
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1, keepdims=True)
    return -dist, {}
