# The other ways to text that show an address: %-formatting, str() of a list holding a bound
# method, map(str, ...), an object array in an f-string. Each is refused when it runs.
def compute_reward(agent_pos, goal_pos):
    texts = ["%s" % (compute_reward,), str([[agent_pos].append]), list(map(str, [len]))[0]]
    texts.append(f"{np.array([compute_reward, 0])}")
    noise = sum(len(text) for text in texts)
    return -np.abs(agent_pos - goal_pos).sum(axis=-1) + 0.0 * noise, {}
