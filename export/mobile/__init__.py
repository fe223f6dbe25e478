"""`edge-et export mobile`: an ONNX bundle → a package an app embeds with ONNX Runtime Mobile.

graphs.py quantizes the reasoner (4- or 8-bit MatMulNBits) and fixes the vision encoder's
input shapes; usability.py asks ONNX Runtime's mobile usability checker about NNAPI and
CoreML; ort_format.py converts every graph to the ORT format with the operator config of a
minimal build; manifest.py writes `bundle.json` (the runtime runs the package as it is) and
`mobile.json` (what the app reads); package.py puts them together and publishes atomically.
"""
