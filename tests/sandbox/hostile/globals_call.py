# Read the module namespace (and its __builtins__).
def compute_reward(agent_pos, goal_pos):
    namespace = globals()
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
