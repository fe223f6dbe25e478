"""The devices a run can ask for (`--device`), a light module the CLI reads at start-up."""

# cpu and cuda run either backend; the rest are ONNX Runtime execution providers (NPUs and
# mobile/desktop accelerators), planned against host memory: ONNX Runtime keeps the weights
# there and falls back to the CPU for the operators a provider does not take.
DEVICES = ("cpu", "cuda", "coreml", "qnn", "nnapi", "dml", "xnnpack")
DEVICE_HELP = (
    "cpu | cuda (layers go to the GPU as VRAM allows); ONNX bundles also coreml | qnn | "
    "nnapi | dml | xnnpack (CPU fallback with a warning)."
)
