# Write a file through an ndarray method.
def compute_reward(block_pos, target_pos):
    block_pos.tofile("/tmp/stolen.bin")
    return -np.linalg.norm(block_pos - target_pos, axis=-1), {}
