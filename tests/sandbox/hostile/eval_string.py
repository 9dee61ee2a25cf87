# Evaluate a string as code.
def compute_reward(agent_pos, goal_pos):
    scale = eval("__import__('os').getpid()")
    return -scale * np.abs(agent_pos - goal_pos).sum(axis=-1), {}
