def compute_reward(route_completion, ego_speed, lateral_offset, collision, off_road):
    # Progress along the route, a preference for speed near the limit (30 m/s), lane
    # keeping, and large penalties for crashing or leaving the road.
    progress = 5.0 * route_completion
    speed = 0.1 * np.clip(ego_speed / 30.0, 0.0, 1.0)
    centering = -0.05 * np.abs(lateral_offset)
    crash = -5.0 * (collision.astype(np.float64) + off_road.astype(np.float64))
    reward = progress + speed + centering + crash
    return reward, {"progress": progress, "speed": speed, "centering": centering, "crash": crash}
