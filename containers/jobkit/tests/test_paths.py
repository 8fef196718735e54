from pathlib import Path

from jobkit.paths import JobPaths


def test_job_paths_follow_sagemaker_defaults_and_overrides() -> None:
    defaults = JobPaths.from_environment({})
    assert defaults.hyperparameters_file == Path("/opt/ml/input/config/hyperparameters.json")
    assert defaults.channel("training") == Path("/opt/ml/input/data/training")
    assert defaults.model_dir == Path("/opt/ml/model")
    assert defaults.failure_file == Path("/opt/ml/output/failure")

    paths = JobPaths.from_environment(
        {"SAGEMAKER_BASE_DIR": "/jobs/j1", "SM_CHANNEL_TRAINING": "/data/t", "SM_MODEL_DIR": "/m"}
    )
    assert paths.hyperparameters_file == Path("/jobs/j1/input/config/hyperparameters.json")
    assert paths.failure_file == Path("/jobs/j1/output/failure")
    assert (paths.channel("training"), paths.model_dir) == (Path("/data/t"), Path("/m"))
    assert JobPaths.from_environment({"SAGEMAKER_BASE_DIR": "/b"}).model_dir == Path("/b/model")
    assert paths.channel("video") == Path("/jobs/j1/input/data/video")
