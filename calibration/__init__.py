"""skelmtl calibration: INT8 Q/DQ quantization and TensorRT engine building."""
