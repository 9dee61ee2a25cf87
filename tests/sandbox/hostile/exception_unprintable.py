# An error whose argument cannot be turned into text (a list nested far past the recursion
# limit), with terminal escapes and a lone surrogate in its message: still the program's own
# "exception", reported cleanly, not a worker crash or a parent traceback.
def compute_reward(agent_pos, goal_pos):
    nested = [0]
    for level in range(50000):
        nested = [nested]
    raise ValueError("\x1b[2J\x1b]0;pwned\x07\r\ud800" * 2000, nested)
