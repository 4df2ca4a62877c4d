"""Training for reasonembed-rag: ReMixer data synthesis, the Redapter (RI-InfoNCE) and InfoNCE losses, the trainer,
and export of a model folder that :meth:`reasonembed_rag.ReasonEmbedEncoder.from_pretrained` loads.

Modules:

* :mod:`training.data` - reading training JSONL (the released ReasonEmbed schema) and planning one-task batches.
* :mod:`training.loss` - InfoNCE and Redapter, exactly as the ReasonEmbed paper computes them.
* :mod:`training.trainer` - the training loop (LoRA or full fine-tuning, resume) and its arguments.
* :mod:`training.checkpoints` - checkpoint folders: writing, finding, pruning and reading them, without pickle.
* :mod:`training.distributed` - several ranks (``torchrun``): process group, devices, summed gradients.
* :mod:`training.export` - model folders (merged weights or base + LoRA adapter) and their model card.
* :mod:`training.cli` - ``reasonembed-train`` (``train``, ``export``, and ``synthesize`` when ReMixer is present).
* :mod:`training.remixer` - ReMixer data synthesis.

Importing this package imports nothing heavy; the submodules load torch, transformers and peft as they need them.
"""

from __future__ import annotations
