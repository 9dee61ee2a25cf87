# A structured dtype with an object field.
def compute_reward(agent_pos, goal_pos):
    table = np.zeros(3, dtype=[("value", "f8"), ("ref", "O")])
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
