# Keep state across calls through a global.
def compute_reward(agent_pos, goal_pos):
    global calls
    calls = 1
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
