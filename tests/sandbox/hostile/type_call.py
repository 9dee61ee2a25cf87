# Build classes at run time with type().
def compute_reward(agent_pos, goal_pos):
    Evil = type("Evil", (), {})
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
