"""The edge-et export toolchain: HF checkpoints -> GGUF (and mmproj) -> quantized -> bundle.

Runs on a workstation, never on the device: it needs torch, transformers and the llama.cpp
converter (`pip install 'edge-et[llama,export]'`). Modules import their heavy dependencies
lazily, so importing this package is cheap.

    export.gguf.converter    the llama.cpp converter matching the installed llama-cpp-python
    export.gguf.files         convert (f32/f16/bf16/q8_0, mmproj), quantize (K-quants)
    export.tiny.checkpoints         tiny random checkpoints of real architectures, built offline
    export.bundle       write bundle.json and place the model files
    export.tiny.bundle  the cached tiny test bundle (`python -m export.tiny.bundle`)
    export.demo         the default demo bundle (`python -m export.demo`)
    export.scenes       seeded generated scenes, questions, the three training forms
    export.micro.model  the micro Idefics3 perception model and its libmtmd token layout
    export.micro.train  its CPU trainer (`python -m export.micro.train --form F --seed S`)
    export.micro.release  export + publish trained micro models into models/micro/<form>/
    export.micro.eval   held-out scoring of a micro model's output through llama.cpp
"""
