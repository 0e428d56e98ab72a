"""The benchmark folder format: loading, preprocessing, and an error for each way it can be wrong."""
import json
import os

import numpy as np
import pytest
import torch

from benchmark_folder import one_thread, write_benchmark  # noqa: F401 (one_thread: autouse fixture)
from gaia_openood.eval.benchmark import BenchmarkError, load_benchmark


def test_convention_layout_loads_in_order(tmp_path):
    bench = load_benchmark(write_benchmark(tmp_path / "mybench"))
    assert bench.name == "mybench"
    assert [(s.name, s.group, len(s)) for s in bench.sets()] == [("id", "id", 24), ("blur", "near", 16), ("noise", "far", 12)]
    assert len(bench.id_train) == 60 and bench.num_classes == 3
    assert bench.image_shape == (3, 8, 8) and bench.mean is None


def test_uint8_images_are_scaled_then_normalised(tmp_path):
    folder = write_benchmark(tmp_path, manifest={"mean": [0.5, 0.25, 0.0], "std": [0.5, 0.25, 2.0]})
    bench = load_benchmark(folder)
    raw = bench.id_test.x[:2]
    x = bench.preprocess(raw)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    pixel = raw[1, 2, 5].astype(np.float64) / 255  # image 1, row 2, column 5, channels last
    expected = (pixel - np.array([0.5, 0.25, 0.0])) / np.array([0.5, 0.25, 2.0])
    assert x[1, :, 2, 5].double().numpy() == pytest.approx(expected, abs=1e-6)


def test_float_channels_first_and_grey_uint8(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 1, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "id_test.npz", x=x, y=np.array([0, 1, 0, 1, 1]))
    os.makedirs(tmp_path / "ood" / "far")
    np.savez(tmp_path / "ood" / "far" / "grey.npz", x=np.full((3, 6, 6), 255, np.uint8))  # (N, H, W)
    bench = load_benchmark(tmp_path)
    assert torch.equal(bench.preprocess(bench.id_test.x), torch.from_numpy(x))
    assert bench.preprocess(bench.ood[0].x).shape == (3, 1, 6, 6)
    assert float(bench.preprocess(bench.ood[0].x).max()) == 1.0
    assert bench.id_train is None


def test_manifest_outside_the_data_with_data_root(tmp_path):
    data = tmp_path / "data"
    write_benchmark(data)
    os.rename(data / "id_test.npz", data / "test.npz")
    os.rename(data / "ood" / "near" / "blur.npz", data / "tin.npz")
    manifest = tmp_path / "my-layout.json"
    manifest.write_text(json.dumps({
        "id_test": "test.npz", "id_train": None, "near": {"tin": "tin.npz"},
        "far": {"noise": "ood/far/noise.npz"}, "classes": ["a", "b", "c"],
        "description": {"tin": "blurred squares"},
    }))
    bench = load_benchmark(manifest, data_root=data)
    assert bench.name == "my-layout"
    assert [s.name for s in bench.ood] == ["tin", "noise"] and bench.id_train is None
    assert bench.classes == ["a", "b", "c"] and bench.description["tin"] == "blurred squares"


def test_subsample_is_a_fixed_random_subset(tmp_path):
    bench = load_benchmark(write_benchmark(tmp_path))
    small = bench.subsample(10, seed=3)
    again = bench.subsample(10, seed=3)
    assert [len(s) for s in small.sets()] == [10, 10, 10]
    assert np.array_equal(small.id_test.x, again.id_test.x) and np.array_equal(small.id_test.y, again.id_test.y)
    rows = [int(np.flatnonzero((bench.id_test.x == img).all(axis=(1, 2, 3)))[0]) for img in small.id_test.x]
    assert rows == sorted(rows) and len(set(rows)) == 10
    assert len(small.id_train) == 60  # the training subset is kept whole


def _save(path, **arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda root: os.remove(os.path.join(root, "id_test.npz")), "ID test set is missing"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), images=np.zeros((2, 8, 8, 3), np.uint8)), "named 'x'"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 8, 8, 3), np.uint8)), "named 'y'"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0])), r"shape \(2,\)"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0.5, 1])), "integers"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, -1])), ">= 0"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 8, 8, 3), np.int32), y=np.array([0, 1])), "dtype int32"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 3, 8, 8), np.uint8), y=np.array([0, 1])), "channels-first"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((2, 3, 8), np.float32), y=np.array([0, 1])), r"\(N, C, H, W\)"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.full((2, 3, 8, 8), np.nan, np.float32), y=np.array([0, 1])), "NaN"),
        (lambda root: _save(os.path.join(root, "id_test.npz"), x=np.zeros((0, 8, 8, 3), np.uint8), y=np.zeros(0, int)), "no images"),
        (lambda root: _save(os.path.join(root, "ood", "far", "noise.npz"), x=np.zeros((2, 16, 16, 3), np.uint8)), "same size"),
        (lambda root: _save(os.path.join(root, "ood", "far", "id.npz"), x=np.zeros((2, 8, 8, 3), np.uint8)), "reserved"),
        (lambda root: open(os.path.join(root, "ood", "far", "noise.npz"), "w").write("not a zip"), "readable .npz"),
        (lambda root: open(os.path.join(root, "benchmark.json"), "w").write("{oops"), "not valid JSON"),
        (lambda root: json.dump({"near_ood": {}}, open(os.path.join(root, "benchmark.json"), "w")), "unknown key"),
        (lambda root: json.dump({"mean": [0.5], "std": [0.5]}, open(os.path.join(root, "benchmark.json"), "w")), "1 values but the images have 3"),
        (lambda root: json.dump({"mean": [0, 0, 0]}, open(os.path.join(root, "benchmark.json"), "w")), "both 'mean' and 'std'"),
        (lambda root: json.dump({"id_train": "gone.npz"}, open(os.path.join(root, "benchmark.json"), "w")), "is missing"),
        (lambda root: json.dump({"near": ["blur.npz"]}, open(os.path.join(root, "benchmark.json"), "w")), "map set names"),
        (lambda root: json.dump({"classes": ["a", "b"]}, open(os.path.join(root, "benchmark.json"), "w")), "only 2 classes"),
        (lambda root: json.dump({"near": {}, "far": {}}, open(os.path.join(root, "benchmark.json"), "w")), "no OOD set"),
    ],
)
def test_malformed_benchmarks_raise_clear_errors(tmp_path, break_it, message):
    root = write_benchmark(tmp_path / "bench")
    break_it(root)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(root)


def test_missing_benchmark_and_data_root(tmp_path):
    with pytest.raises(BenchmarkError, match="benchmark not found"):
        load_benchmark(tmp_path / "nowhere")
    manifest = tmp_path / "m.json"
    manifest.write_text("{}")
    with pytest.raises(BenchmarkError, match="data root not found"):
        load_benchmark(manifest, data_root=tmp_path / "nowhere")
    not_json = tmp_path / "m.txt"
    not_json.write_text("{}")
    with pytest.raises(BenchmarkError, match="manifest"):
        load_benchmark(not_json)
