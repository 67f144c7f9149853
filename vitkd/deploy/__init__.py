"""Deployment artefacts: ONNX fp32/fp16/int8 exports of a student, gated by measured fidelity."""
