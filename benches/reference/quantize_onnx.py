"""The int8 copy of an ONNX model for the browser benchmark's reference row: onnxruntime's own
dynamic quantization (weights int8, activations quantized at run time), as an ONNX Runtime Web
user would make it. Run by `cargo xtask bench browser` in a venv with
tests/reference/onnx_requirements.txt; never on the product's path.

usage: quantize_onnx.py IN.onnx OUT.onnx
"""

import sys

from onnxruntime.quantization import QuantType, quantize_dynamic

quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8)
