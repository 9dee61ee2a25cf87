# A module-level loop.
for i in range(10**9):
    pass


def compute_reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
