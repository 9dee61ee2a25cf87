def compute_reward(gripper_pos, block_pos, target_pos):
    # Get the gripper to the block, then the block to the target (horizontally), plus a
    # bonus once the block rests within 4 cm of the target.
    reach_distance = np.linalg.norm(block_pos - gripper_pos, axis=-1)
    push_distance = np.linalg.norm(target_pos[:, :2] - block_pos[:, :2], axis=-1)
    reach = 0.5 * np.exp(-10.0 * reach_distance)
    push = 2.0 * np.exp(-10.0 * push_distance)
    on_target = (push_distance < 0.04) & (np.abs(block_pos[:, 2] - target_pos[:, 2]) < 0.01)
    success_bonus = 5.0 * on_target.astype(np.float64)
    reward = reach + push + success_bonus
    return reward, {"reach": reach, "push": push, "success_bonus": success_bonus}
