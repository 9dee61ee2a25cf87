# Reflection through a dtype's attributes: .dtype.type is the scalar class.
def compute_reward(agent_pos, goal_pos):
    scalar_class = agent_pos.dtype.type
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + scalar_class(0), {}
