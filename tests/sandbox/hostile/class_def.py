# Classes can override __getattr__ and friends.
class Reward:
    def __getattr__(self, name):
        return name


def compute_reward(agent_pos, goal_pos):
    return -np.abs(agent_pos - goal_pos).sum(axis=-1), {}
