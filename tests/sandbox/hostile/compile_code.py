# Compile code objects at run time.
def compute_reward(agent_pos, goal_pos):
    code = compile("1 + 1", "<x>", "eval")
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
