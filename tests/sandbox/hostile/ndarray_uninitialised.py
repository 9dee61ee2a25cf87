# Uninitialised memory through the array constructor: rewards that change from call to call
# (in the sandbox it returned the previous call's inputs).
def compute_reward(agent_pos, goal_pos):
    noise = np.ndarray(agent_pos.shape[:1])
    return noise - np.abs(agent_pos - goal_pos).sum(axis=-1), {}
