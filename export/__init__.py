"""The edge-et export toolchain: HF checkpoints -> GGUF (and mmproj) -> quantized -> bundle.

Runs on a workstation, never on the device: it needs torch, transformers and the llama.cpp
converter (`pip install 'edge-et[llama,export]'`). Modules import their heavy dependencies
lazily, so importing this package is cheap.

    export.converter    the llama.cpp converter matching the installed llama-cpp-python
    export.gguf         convert (f32/f16/bf16/q8_0, mmproj), quantize (K-quants)
    export.tiny         tiny random checkpoints of real architectures, built offline
    export.bundle       write bundle.json and place the model files
    export.tiny_bundle  the cached tiny test bundle (`python -m export.tiny_bundle`)
    export.demo         the default demo bundle (`python -m export.demo`)
    export.scenes       seeded generated scenes, questions, the three training forms
    export.micro_model  the micro Idefics3 perception model and its libmtmd token layout
    export.train_micro  its CPU trainer (`python -m export.train_micro --form F --seed S`)
    export.micro_release  export + publish trained micro models into models/micro/<form>/
    export.micro_eval   held-out scoring of a micro model's output through llama.cpp
"""
