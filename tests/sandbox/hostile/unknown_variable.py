# A parameter that is not a state variable.
def compute_reward(agent_pos, openai_api_key):
    return -np.abs(agent_pos).sum(axis=-1), {}
