"""The test cluster of ``ray_cluster``: separate nodes, a node-private folder, a clean stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.experiments.ray_cluster import RayCluster, _sessions, ray_cluster

# A driver, as a test's subprocess runs it: one task pinned to each node given, in turn, which
# writes `<node id>.txt` into FOLDER and reports its node, working directory and view of FOLDER.
_PROBE = """
import json, logging, os, sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

@ray.remote(num_cpus=1)
def probe(folder):
    node = ray.get_runtime_context().get_node_id()
    with open(os.path.join(folder, node + ".txt"), "w") as f:
        f.write(node)
    return {"node": node, "cwd": os.getcwd(), "sees": sorted(os.listdir(folder))}

ray.init(log_to_driver=False, logging_level=logging.ERROR)
folder, nodes = sys.argv[1], sys.argv[2:]
pin = [NodeAffinitySchedulingStrategy(node, soft=False) for node in nodes]
probes = [ray.get(probe.options(scheduling_strategy=s).remote(folder), timeout=120) for s in pin]
resources = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
print(json.dumps({"probes": probes, "resources": resources}))
"""


def _probe(cluster: RayCluster, folder: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(folder), *cluster.node_ids],
        env=cluster.driver_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_nodes_are_separate_and_each_stops_only_its_own_processes(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    with ray_cluster(tmp_path / "a") as cluster:
        # A second cluster beside it, as another pytest worker's, failing: it stops its own
        # processes, keeps its logs, and leaves the first one running. This one needs no token.
        with (
            pytest.raises(KeyError, match="inner") as failed,
            ray_cluster(tmp_path / "b", nodes=1, token=False) as inner,
        ):
            assert inner.env == {"RAY_ADDRESS": inner.address, "RAY_AUTH_MODE": "disabled"}
            assert cluster.env["RAY_AUTH_MODE"] == "token"
            assert len(cluster.env["RAY_AUTH_TOKEN"]) == 64
            inner_sessions = set(inner.sessions)
            assert _sessions(inner_sessions)
            assert inner.node_dirs[0].parent != cluster.node_dirs[0].parent
            raise KeyError("inner")
        assert not _sessions(inner_sessions)
        assert not inner.node_dirs[0].exists()
        assert (tmp_path / "b" / "ray-logs" / "node0" / "raylet.out").is_file()
        assert any("ray-logs" in note for note in getattr(failed.value, "__notes__", ["ray-logs"]))

        report = _probe(cluster, folder)
        assert len(set(cluster.node_ids)) == 2
        assert [p["node"] for p in report["probes"]] == list(cluster.node_ids)
        # Workers start where their node's `ray start` ran, not in the driver's folder.
        assert [p["cwd"] for p in report["probes"]] == [str(d) for d in cluster.node_dirs]
        assert report["probes"][1]["sees"] == sorted(f"{n}.txt" for n in cluster.node_ids)
        assert set(report["resources"]) == set(cluster.node_ids)
        for resources in report["resources"].values():
            assert resources["CPU"] == 1
            assert "GPU" not in resources
        sessions = set(cluster.sessions)
        assert cluster.processes()
    assert not _sessions(sessions)
    assert not cluster.node_dirs[0].exists()


def test_a_private_folder_differs_on_the_last_node_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with ray_cluster(tmp_path, private_folder=out) as cluster:
        (out / "driver.txt").write_text("written by the driver")
        head, last = cluster.node_ids
        report = _probe(cluster, out)
        sees = {p["node"]: p["sees"] for p in report["probes"]}
        assert sees[head] == sorted(["driver.txt", f"{head}.txt"])
        assert sees[last] == [f"{last}.txt"]
        assert cluster.private_view is not None
        assert sorted(p.name for p in cluster.private_view.iterdir()) == [f"{last}.txt"]
        assert sorted(p.name for p in out.iterdir()) == sorted(["driver.txt", f"{head}.txt"])
        sessions = set(cluster.sessions)
    assert not _sessions(sessions)


def test_bad_arguments_say_what_to_change(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"nodes": 0}, "nodes must be at least 1, got 0"),
        ({"cpus_per_node": -1}, "cpus_per_node must be at least 0, got -1"),
        ({"private_folder": Path("out")}, "private_folder must be absolute, got out"),
        ({"nodes": 1, "private_folder": tmp_path / "out"}, "needs nodes >= 2"),
        ({"private_folder": Path("/")}, "must not hold the temporary folder"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message), ray_cluster(tmp_path, **kwargs):
            pytest.fail(f"started a cluster with {kwargs}")
