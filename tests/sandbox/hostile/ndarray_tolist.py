# .tolist() turns elements into Python objects no dtype check sees (datetimes among them).
def compute_reward(agent_pos, goal_pos):
    rows = agent_pos.tolist()
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + len(rows) * 0, {}
