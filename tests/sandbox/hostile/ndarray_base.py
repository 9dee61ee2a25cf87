# .base reaches the array a view was taken from (attributes of allowed attributes are checked
# too: .T is allowed, .T.base is not).
def compute_reward(agent_pos, goal_pos):
    owner = agent_pos.T.base
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
