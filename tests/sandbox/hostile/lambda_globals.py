# A lambda's __globals__ is the module namespace.
def compute_reward(agent_pos, goal_pos):
    builtins = (lambda: 0).__globals__["__builtins__"]
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
