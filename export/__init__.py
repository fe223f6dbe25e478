"""The edge-et export toolchain: HF checkpoints -> GGUF (and mmproj) -> quantized -> bundle.

Runs on a workstation, never on the device: it needs torch, transformers and the llama.cpp
converter (`pip install 'edge-et[llama,export]'`). Modules import their heavy dependencies
lazily, so importing this package is cheap.

    export.gguf.converter   the llama.cpp converter matching the installed llama-cpp-python
    export.gguf.files       convert (f32/f16/bf16/q8_0, mmproj), quantize (K-quants)
    export.archs            one module per architecture; archs.base: ArchSpec, Blueprint, TinyBuilder
    export.tiny.checkpoints tiny random checkpoints of real architectures, built offline
    export.bundle           write bundle.json and place the model files
    export.tiny.bundle      the cached tiny test bundle
    export.parity           the checks against transformers, measured in worker subprocesses
    export.demo             the default demo bundle (`edge-et export demo`)
    export.scenes           seeded generated scenes, questions, the three training forms
    export.micro.model      the micro Idefics3 perception model and its libmtmd token layout
    export.micro.train      its CPU trainer (`edge-et export train --form F --seed S`)
    export.micro.release    export + publish trained micro models (`edge-et export release`)
    export.micro.eval       held-out scoring through the runtime (`edge-et export micro-eval`)

Internal subprocess entries, not user commands: `python -m export.parity.worker` (parity
measurements) and `python -m export.gguf.runner` (code that needs the sdist's gguf-py).
"""
