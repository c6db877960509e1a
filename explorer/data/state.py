"""Session keys of the data sources (uploads, source switching) and their helpers (no Streamlit).

The data source and layer pickers are `explorer.core.state.data_key` widgets like every
DataSettings field (``data.source``, ``data.model_layer``, ``data.minilm_layer``,
``data.upload_tensor``); ``data.upload_weight`` / ``data.upload_inputs`` are plain keys holding
upload digests. Parsed uploads stay in this session only (one weight file + one input file),
never in a link.
"""

from __future__ import annotations

from explorer.core.state import State
from explorer.data import synthetic
from explorer.data.sources import UploadedTensors

UPLOAD_WEIGHT_FILE = "upload.weight_file"    # file_uploader widget: a weight tensor file
UPLOAD_INPUT_FILE = "upload.input_file"      # file_uploader widget: calibration inputs
UPLOAD_WEIGHT = "upload.weight"              # UploadedTensors of the last good weight file
UPLOAD_INPUTS = "upload.inputs"              # UploadedTensors of the last good input file
UPLOAD_WEIGHT_ERROR = "upload.weight_error"  # message shown under the weight uploader
UPLOAD_INPUT_ERROR = "upload.input_error"    # message shown under the input uploader
UPLOAD_FORGET_INPUTS = "upload.forget_inputs"  # button: drop the uploaded inputs
SYNTHETIC_SHAPE = "upload.synthetic_shape"   # (in, out) restored when back to synthetic
DATA_DEFAULTS = {UPLOAD_WEIGHT: None, UPLOAD_INPUTS: None, UPLOAD_WEIGHT_ERROR: None,
                 UPLOAD_INPUT_ERROR: None}


def init_data_state(state: State) -> None:
    """Set the missing upload keys to their defaults."""
    for key, value in DATA_DEFAULTS.items():
        state.setdefault(key, value)


def session_uploads(state: State) -> dict[str, UploadedTensors]:
    """This session's parsed uploads (weight and inputs), keyed by digest."""
    found = (state.get(UPLOAD_WEIGHT), state.get(UPLOAD_INPUTS))
    return {upload.digest: upload for upload in found if upload is not None}


def data_limits() -> dict[str, tuple[int, int]]:
    """Allowed ranges of the numeric sample-data widgets."""
    return {
        "in_features": (1, synthetic.MAX_FEATURES),
        "out_features": (1, synthetic.MAX_FEATURES),
        "num_batches": (1, synthetic.MAX_BATCHES),
        "batch_size": (1, synthetic.MAX_BATCH_ROWS),
        "seed": (0, 2**31 - 1),
    }
