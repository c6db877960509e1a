"""quantlib: exact post-training quantization of Linear layers, with profiling.

Modules (import from them directly, as the seed does)::

    quantlib.config_loader   load_config_from_yaml, load_config_from_string, ConfigError
    quantlib.quant_config    QuantConfig
    quantlib.bit_type        BitType
    quantlib.observers       MinmaxObserver, ..., build_observer
    quantlib.quantizers      Quantizer, quantize / dequantize / fake_quantize
    quantlib.profiler        QuantProfiler
    quantlib.quant_linear    QuantLinear
"""

from quantlib.bit_type import BitType
from quantlib.errors import ConfigError
from quantlib.quant_config import QuantConfig

__all__ = ["BitType", "ConfigError", "QuantConfig"]
