"""A tiny benchmark in OpenOOD's folder layout, generated on the fly for integration tests.

Every image list the evaluator opens for ``id_name`` gets a few random PNG images, and
every dataset folder OpenOOD checks before downloading is non-empty, so OpenOOD's own
code runs end to end without touching the network.
"""
import os

import numpy as np
from PIL import Image


def make_fake_benchmark(data_root, id_name="cifar10", images_per_list=6, size=32, seed=0):
    from openood.evaluation_api.datasets import DATA_INFO, benchmarks_dict, dir_dict

    rng = np.random.default_rng(seed)
    info = DATA_INFO[id_name]
    num_classes = info["num_classes"]
    lists = []
    for entry in info["id"].values():
        lists.append((entry, True))
    for name in info["csid"]["datasets"]:
        lists.append((info["csid"][name], True))
    lists.append((info["ood"]["val"], False))
    for group in ("near", "far"):
        for name in info["ood"][group]["datasets"]:
            lists.append((info["ood"][group][name], False))
    for entry, is_id in lists:
        list_path = os.path.join(data_root, entry["imglist_path"])
        os.makedirs(os.path.dirname(list_path), exist_ok=True)
        stem = os.path.splitext(os.path.basename(list_path))[0]
        image_dir = os.path.join(data_root, entry["data_dir"], "fake", stem)
        os.makedirs(image_dir, exist_ok=True)
        lines = []
        for index in range(images_per_list):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            file_name = f"{index}.png"
            Image.fromarray(pixels).save(os.path.join(image_dir, file_name))
            label = int(rng.integers(num_classes)) if is_id else -1
            lines.append(f"fake/{stem}/{file_name} {label}\n")
        with open(list_path, "w") as handle:
            handle.writelines(lines)
    for dataset in benchmarks_dict[id_name]:
        for folder, names in dir_dict.items():
            if dataset in names:
                store = os.path.join(data_root, folder, dataset)
                os.makedirs(store, exist_ok=True)
                open(os.path.join(store, "present"), "w").close()
                break
    return data_root


def make_fake_checkpoints(results_root, id_name="cifar10", seeds=2):
    """OpenOOD's checkpoint layout ``<results_root>/<folder>/s<i>/best.ckpt``, random weights.

    The network is the one OpenOOD's ``scripts/eval_ood.py`` builds for ``id_name``, with
    randomised BatchNorm statistics so that the seeds score differently. Returns the folder
    to pass as ``--root``.
    """
    import torch
    import openood.networks as networks
    from conftest import randomize_norm_layers
    from gaia_openood.runner.benchmarks import BENCHMARKS

    spec = BENCHMARKS[id_name]
    root = os.path.join(results_root, os.path.basename(spec.results_folder))
    for index in range(seeds):
        torch.manual_seed(index)
        net = randomize_norm_layers(getattr(networks, spec.network)(num_classes=spec.num_classes), seed=index)
        folder = os.path.join(root, f"s{index}")
        os.makedirs(folder, exist_ok=True)
        torch.save(net.state_dict(), os.path.join(folder, "best.ckpt"))
    return root


def make_fake_imagenet_weights(path, seed=0):
    """A torchvision ResNet-50 state dict with random weights, saved at ``path``."""
    import torch
    import torchvision
    from conftest import randomize_norm_layers

    torch.manual_seed(seed)
    net = randomize_norm_layers(torchvision.models.resnet50(weights=None), seed=seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


POSTPROCESSOR_YAMLS = {
    "msp": "postprocessor:\n  name: msp\n  APS_mode: False\n",
    "ebo": ("postprocessor:\n  name: ebo\n  APS_mode: True\n  postprocessor_args:\n    temperature: 1\n"
            "  postprocessor_sweep:\n    temperature_list: [1]\n"),
}


def make_fake_configs(config_root, names=("msp", "ebo")):
    """A ``configs/postprocessors`` folder with OpenOOD's YAMLs of ``names`` (as on its main)."""
    folder = os.path.join(config_root, "postprocessors")
    os.makedirs(folder, exist_ok=True)
    for name in names:
        with open(os.path.join(folder, f"{name}.yml"), "w") as handle:
            handle.write(POSTPROCESSOR_YAMLS[name])
    return config_root
