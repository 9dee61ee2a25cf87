# print is not available in the worker.
def compute_reward(agent_pos, goal_pos):
    dist = np.abs(agent_pos - goal_pos).sum(axis=-1)
    print(dist)
    return -dist, {}
