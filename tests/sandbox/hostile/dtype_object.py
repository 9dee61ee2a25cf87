# An object array named by the builtin: Python objects behind numpy's back.
def compute_reward(agent_pos, goal_pos):
    cells = np.zeros(agent_pos.shape[0], dtype=object)
    cells[0] = compute_reward
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
