# Pretend the user pressed Ctrl-C.
def compute_reward(agent_pos, goal_pos):
    raise KeyboardInterrupt
