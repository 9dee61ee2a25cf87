# np.dtype builds any dtype from a string.
def compute_reward(agent_pos, goal_pos):
    clock = np.dtype("M8[s]")
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
