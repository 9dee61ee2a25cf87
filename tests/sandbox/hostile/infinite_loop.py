# Never return.
def compute_reward(agent_pos, goal_pos):
    while True:
        pass
