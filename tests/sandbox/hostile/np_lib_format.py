# numpy's .npy reader (pickle inside).
def compute_reward(block_pos, target_pos):
    np.lib.format.read_array(None, allow_pickle=True)
    return -np.linalg.norm(block_pos - target_pos, axis=-1), {}
