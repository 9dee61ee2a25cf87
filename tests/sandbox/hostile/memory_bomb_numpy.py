# A 10**5 x 10**5 float64 array: ~80 GB.
def compute_reward(agent_pos, goal_pos):
    grid = np.ones((10**5, 10**5))
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {"grid": grid[0]}
