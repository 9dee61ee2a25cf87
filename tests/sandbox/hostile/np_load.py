# numpy file I/O.
def compute_reward(block_pos, target_pos):
    reference = np.load("/etc/passwd", allow_pickle=True)
    return -np.linalg.norm(block_pos - reference, axis=-1), {}
