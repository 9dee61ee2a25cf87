# numpy's ctypes bridge to raw memory.
def compute_reward(block_pos, target_pos):
    np.ctypeslib.as_array(block_pos)
    return -np.linalg.norm(block_pos - target_pos, axis=-1), {}
