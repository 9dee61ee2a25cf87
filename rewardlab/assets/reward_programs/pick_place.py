def compute_reward(gripper_pos, block_pos, target_pos, block_grasped):
    # Reach, grasp, lift above the platform, carry to the target, release on it.
    reach_distance = np.linalg.norm(block_pos - gripper_pos, axis=-1)
    place_distance = np.linalg.norm(target_pos - block_pos, axis=-1)
    grasped = block_grasped.astype(np.float64)
    reach = 0.5 * np.exp(-10.0 * reach_distance)
    grasp = 0.5 * grasped
    lift = grasped * np.clip(block_pos[:, 2] / (target_pos[:, 2] + 0.03), 0.0, 1.0)
    place = 2.0 * np.exp(-10.0 * place_distance)
    horizontal = np.linalg.norm(target_pos[:, :2] - block_pos[:, :2], axis=-1)
    placed = (horizontal < 0.04) & (np.abs(block_pos[:, 2] - target_pos[:, 2]) < 0.01)
    success_bonus = 5.0 * placed.astype(np.float64)
    reward = reach + grasp + lift + place + success_bonus
    components = {
        "reach": reach,
        "grasp": grasp,
        "lift": lift,
        "place": place,
        "success_bonus": success_bonus,
    }
    return reward, components
