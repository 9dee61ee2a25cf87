# Unbounded recursion.
def descend(depth):
    return descend(depth + 1)


def compute_reward(agent_pos, goal_pos):
    return descend(0), {}
