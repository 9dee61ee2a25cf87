# Global random state: rewards would not be a function of the state.
def compute_reward(block_pos, target_pos):
    np.random.seed(0)
    noise = np.random.normal(size=block_pos.shape[0])
    return -np.linalg.norm(block_pos - target_pos, axis=-1) + noise, {}
