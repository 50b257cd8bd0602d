"""Regenerate the table of docs/memory.md: the memory budget (`tfbreak.measure.budget`) of every
shipped config, its largest run (a sweep's values can differ in batch size).

Each config's model is built (random weights, no data) to count its parameters D and the
activations A of one example; BERT's TF-Hub encoder is counted as keras-hub's BertBackbone with
the multilingual vocabulary (the same architecture: 177,853,440 parameters), its activations are
not counted (not Keras layers). The sizes are written with the table, so that
tests/docs/test_docs_memory.py checks the table against the budget without building models.

    python scripts/memory_table.py          # print the table
    python scripts/memory_table.py --write  # update docs/memory.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "memory.md"
BEGIN, END = "<!-- memory table: begin -->", "<!-- memory table: end -->"
SIZES_RE = re.compile(r"<!-- sizes: (\{.*\}) -->")

INPUT_SHAPES = {  # one example as the models take it (the sizes of the splits: tfbreak.catalog)
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "imdb_reviews": (80,),
    "glue/mnli": (40,),
    "imagenet2012": (224, 224, 3),
}
MBERT_PARAMETERS = 177_853_440  # keras_hub BertBackbone(vocabulary_size=119547, 12 layers, 768)


def runs(flagfile: Path):
    """The (ExperimentConfig, sweep) of each run of a flagfile."""
    from absl import flags

    from tfbreak import flags as tfflags

    fl = flags.FLAGS
    fl.unparse_flags()
    fl(["tfbreak", f"--flagfile={flagfile}"])
    base = tfflags.config_from_flags()
    out = tfflags.sweep_configs(base, tfflags.parse_sweep(fl.sweep))
    fl.unparse_flags()
    return out


def measured_sizes(config) -> dict:
    """D, A, the training set and the Hessian sample of a config (its model built)."""
    from tfbreak.catalog import dataset
    from tfbreak.curvature import classification_loss
    from tfbreak.curvature.keras_per_example import KerasPerExample
    from tfbreak.models import build_model, trainable_tf_variables
    from tfbreak.training.memory import activation_count

    spec = dataset(config.dataset)
    num_train, classes, shape = spec.num_train, spec.num_classes, INPUT_SHAPES[spec.name]
    if config.model == "bert":
        parameters, activations, factored = MBERT_PARAMETERS + 768 * classes + classes, None, False
    else:
        model = build_model(config.model, num_classes=classes, input_shape=shape, seed=0)
        variables = trainable_tf_variables(model)
        parameters = sum(int(v.shape.num_elements()) for v in variables)
        activations = activation_count(model)
        loss = classification_loss(model, bn_mode=config.measure.bn_mode)
        factored = KerasPerExample.when_supported(loss, variables) is not None
    return {
        "parameters": parameters,
        "activations": activations,
        "num_train": num_train,
        "hessian_sample": config.measure.hessian_size(num_train),
        "factored_k": factored,
    }


def table(sizes: dict[str, dict]) -> str:
    """The table from each config's sizes: per config, the row of its run with the largest
    peak (TensorFlow-free)."""
    from tfbreak.measure.budget import TABLE_HEADER, Sizes, measurement_memory, table_row

    rows = [TABLE_HEADER]
    for name, s in sizes.items():
        best = None
        for config, _ in runs(ROOT / "configs" / f"{name}.flags"):
            m = config.measure
            run_sizes = Sizes(
                parameters=s["parameters"],
                hessian_sample=s["hessian_sample"],
                hessian_batch_size=m.hessian_batch_size,
                batch_size=config.batch_size,
                k_Ms=config.K_Ms,
                activations=s["activations"],
                factored_k=s["factored_k"],
            )
            peak = max(e.combined_bytes for e in measurement_memory(m, run_sizes).values())
            if best is None or peak > best[0]:
                best = (peak, m, run_sizes)
        rows.append(table_row(name, best[1], best[2], s["num_train"]))
    return "\n".join(rows)


def block(sizes: dict[str, dict]) -> str:
    return f"{BEGIN}\n<!-- sizes: {json.dumps(sizes)} -->\n{table(sizes)}\n{END}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/memory.md")
    args = parser.parse_args()
    sizes = {}
    for flagfile in sorted((ROOT / "configs").glob("*.flags")):
        config, _ = runs(flagfile)[0]
        sizes[flagfile.stem] = measured_sizes(config)
        print(f"{flagfile.stem}: {sizes[flagfile.stem]}", file=sys.stderr)
    text = block(sizes)
    if not args.write:
        print(text)
        return
    doc = DOC.read_text()
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    DOC.write_text(doc[:start] + text + doc[end:])


if __name__ == "__main__":
    main()
