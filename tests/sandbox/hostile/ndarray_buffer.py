# An array placed on another array's memory, with an offset and strides that walk past it.
def compute_reward(agent_pos, goal_pos):
    spy = np.ndarray(
        (1 << 16,), dtype=np.int64, buffer=agent_pos, offset=8, strides=(0,)
    )
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + spy[0] * 0, {}
