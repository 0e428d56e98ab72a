"""Write small synthetic benchmark folders in the documented npz format (for the eval tests)."""
import json
import os

import numpy as np
import pytest
import torch


def write_benchmark(
    root,
    *,
    n_id=24,
    n_train=60,
    n_near=16,
    n_far=12,
    size=8,
    classes=3,
    manifest=None,
    seed=0,
):
    """id_test.npz, id_train.npz (if n_train), ood/near/blur.npz, ood/far/noise.npz under ``root``.

    ID images are bright squares whose position encodes the class, so a model can tell them
    apart; near-OOD are blurred copies, far-OOD uniform noise. Returns ``root`` as a str.
    """
    rng = np.random.default_rng(seed)
    root = str(root)
    os.makedirs(os.path.join(root, "ood", "near"), exist_ok=True)
    os.makedirs(os.path.join(root, "ood", "far"), exist_ok=True)

    def id_images(n):
        y = np.arange(n) % classes
        x = rng.integers(0, 40, size=(n, size, size, 3)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, label : label + 3, 1:4] = 230
        return x, y.astype(np.int64)

    x, y = id_images(n_id)
    np.savez(os.path.join(root, "id_test.npz"), x=x, y=y)
    if n_train:
        x, y = id_images(n_train)
        np.savez(os.path.join(root, "id_train.npz"), x=x, y=y)
    blur = id_images(n_near)[0].astype(np.float32)
    blur = ((blur + np.roll(blur, 1, axis=1) + np.roll(blur, 1, axis=2)) / 3).astype(np.uint8)
    np.savez(os.path.join(root, "ood", "near", "blur.npz"), x=blur)
    np.savez(os.path.join(root, "ood", "far", "noise.npz"), x=rng.integers(0, 256, (n_far, size, size, 3)).astype(np.uint8))
    if manifest is not None:
        with open(os.path.join(root, "benchmark.json"), "w") as handle:
            json.dump(manifest, handle)
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run on one CPU thread (autouse in the modules that import it): the eval tests' tensors
    are tiny, and several threads slow down by an order of magnitude when other processes
    load the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
