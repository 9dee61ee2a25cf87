# A component with one value for the whole batch.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1)
    return -dist, {"mean_distance": dist.mean()}
