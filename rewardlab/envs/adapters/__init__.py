"""Task adapters rewardlab ships for third-party envs (see :data:`rewardlab.envs.tasks.SHIPPED`).

Each module is imported on the first lookup of a matching env id, never by ``import rewardlab``;
none imports its env's package at module level (the env, already made, is all it reads).
"""
