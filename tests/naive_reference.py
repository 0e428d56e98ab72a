"""A deliberately naive GAIA, written the way the published code works, for the tests only.

Forward hooks register tensor hooks on the hooked outputs; ``.backward()`` computes every
parameter gradient; GAIA-A runs two backward passes; one sample at a time; in-place
activations are switched off on a deep copy. Slow and simple, independent of the package.
"""
import copy

import torch


def _copy_without_inplace(model):
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return model


def _run(model, xi, names, output_name=None):
    grads = {name: [] for name in names}
    kept = {}
    handles = []

    def tap(name):
        def hook(module, inputs, output):
            output.register_hook(lambda g: grads[name].append(g.detach().clone()))

        return hook

    def keep(module, inputs, output):
        kept["map"] = output

    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(tap(name)))
        if output_name is not None:
            handles.append(model.get_submodule(output_name).register_forward_hook(keep))
        logits = model(xi)
    finally:
        for handle in handles:
            handle.remove()
    return logits, grads, kept.get("map")


def naive_gaia_z(model, x, names):
    model = _copy_without_inplace(model)
    scores = []
    for i in range(x.shape[0]):
        logits, grads, _ = _run(model, x[i : i + 1], names)
        model.zero_grad()
        logits.max(dim=1).values.sum().backward()
        squares, channels = 0.0, 0
        for name in names:
            for g in grads[name]:
                rho = (g != 0).double().mean(dim=(2, 3))[0]
                squares += float((rho**2).sum())
                channels += rho.numel()
        scores.append(-squares / channels)
    return torch.tensor(scores, dtype=torch.float64)


def naive_gaia_a(model, x, inner_names, output_name):
    model = _copy_without_inplace(model)
    scores = []
    for i in range(x.shape[0]):
        logits, grads, feature_map = _run(model, x[i : i + 1], inner_names, output_name)
        out_grad = []
        feature_map.register_hook(lambda g: out_grad.append(g.detach().clone()))
        model.zero_grad()
        torch.log_softmax(logits, dim=1).sum().backward(retain_graph=True)
        for name in inner_names:
            grads[name].clear()  # the first pass also reached the inner layers
        g = out_grad[0].double().mean(dim=(2, 3))[0]
        o_squared = float(g.abs().mean())
        z = feature_map.mean(dim=(2, 3))
        z.sum().backward()
        total, channels = 0.0, 0
        for name in inner_names:
            for grad in grads[name]:
                w = grad.double().mean(dim=(2, 3))[0]
                total += float((w**2).sum()) / o_squared
                channels += w.numel()
        scores.append(-total / channels)
    return torch.tensor(scores, dtype=torch.float64)
