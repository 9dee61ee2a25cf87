def compute_reward(agent_pos, goal_pos):
    # Dense approach term plus a large bonus for standing on the goal.
    distance = np.abs(goal_pos - agent_pos).sum(axis=-1).astype(np.float64)
    approach = -0.05 * distance
    at_goal = (distance == 0).astype(np.float64)
    goal_bonus = 10.0 * at_goal
    return approach + goal_bonus, {"approach": approach, "goal_bonus": goal_bonus}
