"""How a step's `workers`/`gpus` map to Dask worker resources and to GPU devices."""

from __future__ import annotations

import pytest

from conveyor.core.context import StepContext, enter_context, exit_context
from conveyor.exceptions import ConfigError
from conveyor.execution.dask import check_resources, dask_resources, job_resources
from conveyor.training.distributed._cluster import claim_gpus, job_spec, visible_gpus

CPU_ONLY = {
    "workers": {
        "tcp://127.0.0.1:1": {"resources": {"CPU": 1}},
        "tcp://127.0.0.1:2": {"resources": {"CPU": 1}},
    }
}
ONE_GPU = {
    "workers": {
        "tcp://127.0.0.1:1": {"resources": {"CPU": 1, "GPU": 1}},
        "tcp://127.0.0.1:2": {"resources": {"CPU": 1}},
    }
}


def test_workers_is_the_job_size_and_the_rest_is_per_worker() -> None:
    assert job_resources({"workers": 2, "gpus": 1, "memory": "1GiB"}) == (
        2,
        {"GPU": 1.0, "MEMORY": 2**30},
    )
    assert job_resources({"gpus": 1}) == (None, {"GPU": 1.0})
    assert dask_resources({"workers": 4, "cpus": 2}) == {"CPU": 2.0}
    with pytest.raises(ConfigError, match="'workers' resource of a step must be an int >= 1"):
        job_resources({"workers": 0})


def test_a_gpu_job_on_a_cluster_without_gpus_names_the_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        check_resources({"GPU": 1.0}, CPU_ONLY, count=2)
    message = str(caught.value)
    assert "asks for 2 Dask workers with GPU=1 each, but only 0 of the cluster's 2" in message
    assert "no GPU workers" in message and '--resources "GPU=1"' in message
    with pytest.raises(ConfigError, match="only 1 of the cluster's 2 workers offer that"):
        check_resources({"GPU": 1.0}, ONE_GPU, count=2)
    check_resources({"GPU": 1.0}, ONE_GPU, count=1)
    check_resources({}, CPU_ONLY, count=2)
    with pytest.raises(ConfigError, match="asks for 3 Dask workers, but only 2"):
        check_resources({}, CPU_ONLY, count=3)


def test_the_job_size_comes_from_the_running_step_unless_given() -> None:
    context = StepContext("run", "sr", "train", resources={"workers": 3, "gpus": 1})
    token = enter_context(context)
    try:
        spec = job_spec(None, None)
        assert (spec.workers, spec.gpus, spec.resources) == (3, 1, {"GPU": 1.0})
        assert job_spec(2, 0).resources == {}
    finally:
        exit_context(token)
    assert job_spec(None, None).workers == 1
    with pytest.raises(ConfigError, match="'gpus' resource must be an int >= 0"):
        job_spec(2, -1)


def test_visible_gpus_follow_cuda_visible_devices() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({}, count=2) == ["0", "1"]


def test_ranks_in_one_process_never_share_a_gpu() -> None:
    devices = ["3", "7"]
    with claim_gpus(1, devices) as first, claim_gpus(1, devices) as second:
        assert {*first, *second} == {"3", "7"}
        with pytest.raises(ConfigError, match="0 free GPUs"), claim_gpus(1, devices):
            pass
    with claim_gpus(2, devices) as both:  # released when the ranks ended
        assert both == ["3", "7"]
