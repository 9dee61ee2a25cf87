# *args hides which variables the program reads.
def compute_reward(*args):
    return -np.abs(args[0] - args[1]).sum(axis=-1), {}
