# Makes a read-only broadcast view writable: one write lands in many elements.
def compute_reward(agent_pos, goal_pos):
    wide = np.broadcast_to(agent_pos[:1], agent_pos.shape)
    wide.setflags(write=True)
    wide[0, 0] = 1000
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
