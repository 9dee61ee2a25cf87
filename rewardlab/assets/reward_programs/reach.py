def compute_reward(gripper_pos, target_pos):
    # Exponential closeness to the ball plus a bonus inside the success radius (4 cm).
    distance = np.linalg.norm(target_pos - gripper_pos, axis=-1)
    closeness = np.exp(-10.0 * distance)
    success_bonus = 2.0 * (distance < 0.04).astype(np.float64)
    return closeness + success_bonus, {"closeness": closeness, "success_bonus": success_bonus}
