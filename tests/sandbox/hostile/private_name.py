# Underscore names are where CPython keeps its internals.
def compute_reward(agent_pos, goal_pos):
    _cache = np.abs(agent_pos - goal_pos).sum(axis=-1)
    return -_cache, {}
