# Module-level code runs when the program loads.
x = print("hi")


def compute_reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
