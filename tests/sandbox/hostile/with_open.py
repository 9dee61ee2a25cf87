# Open a file through a context manager.
def compute_reward(agent_pos, goal_pos):
    with open("/root/.bashrc") as f:
        f.read()
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
