def compute_reward(route_completion, ego_speed, lateral_offset, collision, off_road):
    # Every step costs the route still ahead, so the agent wants to
    # finish; a preference for speed near the limit (30 m/s) and lane keeping; crashing or
    # leaving the road ends the episode and costs far more than driving on would.
    remaining = -(1.0 - route_completion)
    speed = 0.1 * np.clip(ego_speed / 30.0, 0.0, 1.0)
    centering = -0.05 * np.abs(lateral_offset)
    crash = -50.0 * np.maximum(collision.astype(np.float64), off_road.astype(np.float64))
    reward = remaining + speed + centering + crash
    return reward, {"remaining": remaining, "speed": speed, "centering": centering, "crash": crash}
