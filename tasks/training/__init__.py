"""The fine-tuning recipe behind ``tasks.finetune``: data, estimate, recipe, callbacks, outputs,
launch. Modules import torch/transformers only inside functions (except ``callbacks``, which
subclasses ``TrainerCallback`` and is imported only by the recipe)."""
