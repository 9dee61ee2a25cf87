# A ufunc told to compute in object dtype through its signature keyword.
def compute_reward(agent_pos, goal_pos):
    objects = np.add(agent_pos, goal_pos, signature="OO->O")
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
