# A NaN component next to a finite reward.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1).astype(np.float64)
    return -dist, {"distance": -dist, "broken": np.log(-1.0 - dist)}
