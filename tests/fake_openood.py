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
    for split, entry in info["id"].items():
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
