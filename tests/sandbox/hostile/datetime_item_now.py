# The wall clock through a datetime value: .item() turns a datetime64 element into a Python
# datetime, whose .now() reads the clock. A reward must be a function of the state.
def compute_reward(agent_pos, goal_pos):
    clock = np.array([0], dtype="M8[s]").item().now().microsecond
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + clock * 1e-9, {}
