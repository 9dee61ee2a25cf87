# An object array from the one-letter code, passed positionally to np.array.
def compute_reward(agent_pos, goal_pos):
    cells = np.array([agent_pos, goal_pos, None], "O")
    return -np.abs(cells[0] - cells[1]).sum(axis=-1), {}
