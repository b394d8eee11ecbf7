"""PEFT's LoRA selection and scaling rules, written from PEFT's source (nothing from
qlorad): which base modules a LoraConfig wraps (peft/tuners/tuners_utils.py
check_target_module_exists), the rank and alpha each gets (peft/utils/other.py
get_pattern_key, peft/tuners/lora/model.py _create_and_replace) and its scaling
(peft/tuners/lora/layer.py update_layer: alpha / sqrt(r) with use_rslora, else alpha / r).
"""
import re


def target_module_exists(config, key):
    exclude = config.get("exclude_modules")
    if exclude:
        if isinstance(exclude, str):
            if re.fullmatch(exclude, key):
                return False
        elif key in exclude or any(key.endswith("." + e) for e in exclude):
            return False
    targets = config["target_modules"]
    if isinstance(targets, str):
        return re.fullmatch(targets, key) is not None
    if key in targets:
        return True
    found = any(key.endswith("." + t) for t in targets)
    layer_indexes = config.get("layers_to_transform")
    layers_pattern = config.get("layers_pattern")
    using_indexes = layer_indexes is not None and (len(layer_indexes) != 0 if isinstance(layer_indexes, list) else True)
    if using_indexes and found:
        index = None
        if layers_pattern is None or len(layers_pattern) == 0:
            index = re.match(r".*?\.[^.]*\.(\d+)\.", key)
        else:
            for pattern in [layers_pattern] if isinstance(layers_pattern, str) else layers_pattern:
                index = re.match(rf".*?\.{pattern}\.(\d+)\.", key)
                if index is not None:
                    break
        if index is None:
            return False
        index = int(index.group(1))
        return index == layer_indexes if isinstance(layer_indexes, int) else index in layer_indexes
    return found


def pattern_key(keys, key):
    for k in keys:
        if re.match(rf"(.*\.)?({k})$", key):
            return k
    return key


def rank_alpha_scaling(config, key):
    ranks, alphas = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    r = ranks.get(pattern_key(ranks.keys(), key), config["r"])
    alpha = alphas.get(pattern_key(alphas.keys(), key), config["lora_alpha"])
    scaling = alpha / (r ** 0.5) if config.get("use_rslora") else alpha / r
    return r, alpha, scaling
